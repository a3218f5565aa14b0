/** Summary statistics for benchmark samples: percentiles, mean and its standard error. */
export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  /** Standard error of the mean, as a percentage of the mean. */
  readonly sePct: number;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0, p50: NaN, p99: NaN, mean: NaN, sePct: NaN };
  const [p50, p99] = quantiles(s, [0.5, 0.99]) as [number, number];
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
  return { n, p50, p99, mean, sePct: (100 * sd) / Math.sqrt(n) / mean };
}

/** The p-quantiles (0 to 1) of the samples, by the same rule as summarize(). */
export function quantiles(samples: readonly number[], ps: readonly number[]): number[] {
  const s = [...samples].sort((a, b) => a - b);
  return ps.map((p) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))]!));
}

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x.toFixed(digits);
}

/** Renders rows as a Markdown table (also readable in a terminal). */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
