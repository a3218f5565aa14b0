/**
 * A bounded ring of recent log lines: agent events and program output (runs, invokes, calls). `logs` reads
 * from it and `logs -f` follows it. Bounded twice, by lines and by bytes; the oldest lines go first.
 */

export type LogStream = 'stdout' | 'stderr' | 'event';

export interface LogEntry {
  readonly seq: number;
  /** Milliseconds since the epoch. */
  readonly ts: number;
  /** `agent`: the daemon's own events; `app`: output of an app or module (runs, invokes, calls). */
  readonly source: 'agent' | 'app';
  readonly app?: string;
  readonly run?: number;
  readonly stream: LogStream;
  readonly level?: string;
  readonly line: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

export interface LogFilter {
  readonly app?: string;
  readonly run?: number;
  readonly source?: 'agent' | 'app';
  /** Only entries with seq greater than this. */
  readonly after?: number;
}

/** Lines longer than this are split: one runaway write cannot take the whole ring. */
export const MAX_LINE = 16 * 1024;

export function matches(e: LogEntry, f: LogFilter): boolean {
  return (
    (f.app === undefined || e.app === f.app) &&
    (f.run === undefined || e.run === f.run) &&
    (f.source === undefined || e.source === f.source) &&
    (f.after === undefined || e.seq > f.after)
  );
}

function sizeOf(e: Omit<LogEntry, 'seq' | 'ts'>): number {
  return 64 + e.line.length + (e.app?.length ?? 0) + (e.fields ? JSON.stringify(e.fields).length : 0);
}

export class LogRing {
  readonly maxLines: number;
  readonly maxBytes: number;
  private readonly entries: LogEntry[] = [];
  private head = 0;
  private bytes = 0;
  private seq = 0;
  private dropped = 0;
  private readonly followers = new Set<{ filter: LogFilter; cb: (e: LogEntry) => void }>();

  constructor(options: { maxLines: number; maxBytes: number }) {
    this.maxLines = options.maxLines;
    this.maxBytes = options.maxBytes;
  }

  push(e: Omit<LogEntry, 'seq' | 'ts'> & { ts?: number }): LogEntry {
    const entry: LogEntry = { ...e, seq: ++this.seq, ts: e.ts ?? Date.now() };
    this.entries.push(entry);
    this.bytes += sizeOf(entry);
    while (this.entries.length - this.head > this.maxLines || (this.bytes > this.maxBytes && this.entries.length - this.head > 1)) {
      this.bytes -= sizeOf(this.entries[this.head]!);
      this.head++;
      this.dropped++;
    }
    // Compact now and then instead of shifting on every push.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    for (const f of this.followers) {
      if (matches(entry, f.filter)) f.cb(entry);
    }
    return entry;
  }

  /** Entries matching `filter`, oldest first; with `tail`, only the last `tail` of them. */
  query(filter: LogFilter = {}, tail?: number): LogEntry[] {
    const out: LogEntry[] = [];
    for (let i = this.entries.length - 1; i >= this.head; i--) {
      const e = this.entries[i]!;
      if (filter.after !== undefined && e.seq <= filter.after) break;
      if (!matches(e, filter)) continue;
      out.push(e);
      if (tail !== undefined && out.length >= tail) break;
    }
    return out.reverse();
  }

  /** Calls `cb` for every later entry matching `filter`; returns the function that stops it. */
  follow(filter: LogFilter, cb: (e: LogEntry) => void): () => void {
    const f = { filter, cb };
    this.followers.add(f);
    return () => this.followers.delete(f);
  }

  stats(): { lines: number; bytes: number; dropped: number; lastSeq: number; followers: number } {
    return { lines: this.entries.length - this.head, bytes: this.bytes, dropped: this.dropped, lastSeq: this.seq, followers: this.followers.size };
  }
}

/** Splits program output into lines per stream, holding back a partial last line until it ends (or flush()). */
export class LineSplitter {
  private readonly partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  private readonly decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  private readonly emit: (stream: 'stdout' | 'stderr', line: string) => void;

  constructor(emit: (stream: 'stdout' | 'stderr', line: string) => void) {
    this.emit = emit;
  }

  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    let text = this.partial[stream] + this.decoder[stream].decode(chunk, { stream: true });
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      this.out(stream, text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    while (text.length > MAX_LINE) {
      this.out(stream, text.slice(0, MAX_LINE));
      text = text.slice(MAX_LINE);
    }
    this.partial[stream] = text;
  }

  private out(stream: 'stdout' | 'stderr', line: string): void {
    for (let i = 0; i < line.length || i === 0; i += MAX_LINE) this.emit(stream, line.slice(i, i + MAX_LINE).replace(/\r$/, ''));
  }

  flush(): void {
    for (const s of ['stdout', 'stderr'] as const) {
      const rest = this.partial[s] + this.decoder[s].decode();
      this.partial[s] = '';
      if (rest.length > 0) this.out(s, rest);
    }
  }
}
