/**
 * npm run bench:runner: the runner measured over the real channel from the agent's side, in one run.
 *   - start -> first output of a command module, cold (new module: compile + new instance) and warm (pooled);
 *   - warm reactor calls per second over the channel (pipelined, as the agent's API issues them);
 *   - nbody under the runner vs the same C source built natively with clang -O2 (build/examples.sh --native);
 *   - memory per warm pooled instance beyond its linear memory (runner RSS growth / instances).
 * Prints a table and rewrites its section of docs/benchmarks.md. Failed measurements are reported, not dropped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRunner, type RunnerUnderTest } from '../test/helpers/runner-process.js';
import { bigModule } from '../test/helpers/modules.js';
import { writeSection } from './lib/doc.js';
import { fmt, summarize, table, type Summary } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ex = (n: string): Buffer => fs.readFileSync(path.join(ROOT, 'examples', n, `${n}.wasm`));
const NBODY_N = Number(process.env.BENCH_NBODY_N ?? 5_000_000);
const CALL_SECONDS = Number(process.env.BENCH_CALL_SECONDS ?? 3);

async function firstOutput(rt: RunnerUnderTest, digest: string): Promise<{ ms: number; start: string | undefined }> {
  const t0 = performance.now();
  let first = 0;
  const h = await rt.link.run({ digest, argv0: 'hello.wasm', args: [], env: {} }, {
    onStdout: () => {
      if (first === 0) first = performance.now();
    },
    onStderr: () => undefined,
  });
  const exit = await h.exit;
  if (exit.exitCode !== 0 || first === 0) throw new Error(`hello failed: ${JSON.stringify(exit)}`);
  return { ms: first - t0, start: exit.stats.start };
}

async function startLatency(rt: RunnerUnderTest): Promise<{ cold: number[]; warm: number[] }> {
  const hello = ex('hello');
  const cold: number[] = [];
  const warm: number[] = [];
  // Cold: a module the runner has never compiled, so no pooled instance can exist (the transfer is excluded).
  for (let i = 0; i < 15; i++) {
    const digest = await rt.put(bigModule(hello, 8 + i));
    cold.push((await firstOutput(rt, digest)).ms);
  }
  const digest = await rt.put(hello);
  for (let i = 0; i < 20; i++) await firstOutput(rt, digest);
  for (let i = 0; i < 200; i++) {
    const r = await firstOutput(rt, digest);
    if (r.start !== 'cold') warm.push(r.ms);
  }
  return { cold, warm };
}

async function callRate(rt: RunnerUnderTest, concurrency: number): Promise<number[]> {
  const digest = await rt.put(ex('calc'));
  await rt.link.deploy({ app: 'calc', digest, kind: 'reactor', options: { args: [], env: {}, preopens: [], limits: {}, pool: { min: 1, max: 1, idleMs: 60_000 } } });
  const args = [{ type: 'i32' as const, value: 20 }, { type: 'i32' as const, value: 22 }];
  const rates: number[] = [];
  for (let rep = 0; rep < 4; rep++) {
    let calls = 0;
    let failed = 0;
    const end = performance.now() + (rep === 0 ? 500 : CALL_SECONDS * 1000);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const r = await rt.link.call({ app: 'calc', fn: 'add', args });
          if (!r.ok || r.results[0]!.value !== 42) failed++;
          calls++;
        }
      }),
    );
    if (failed > 0) throw new Error(`${failed} calls failed`);
    if (rep > 0) rates.push(calls / ((performance.now() - t0) / 1000));
  }
  return rates;
}

function nativeNbody(): number[] {
  const bin = path.join(ROOT, 'build/out/nbody-native');
  if (!fs.existsSync(bin)) execFileSync('bash', [path.join(ROOT, 'build/examples.sh'), '--native'], { stdio: 'ignore' });
  const out: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = spawnSync(bin, [String(NBODY_N)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`native nbody failed: ${r.stderr}`);
    out.push(performance.now() - t0);
  }
  return out;
}

async function runnerNbody(rt: RunnerUnderTest): Promise<number[]> {
  const digest = await rt.put(ex('nbody'));
  const out: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const h = await rt.link.run({ digest, argv0: 'nbody.wasm', args: [String(NBODY_N)], env: {} }, { onStdout: () => undefined, onStderr: () => undefined });
    const exit = await h.exit;
    if (exit.exitCode !== 0) throw new Error(`nbody failed: ${JSON.stringify(exit)}`);
    out.push(performance.now() - t0);
  }
  return out;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

async function memoryPerInstance(): Promise<{ perInstanceMb: number; linearMb: number; instances: number }> {
  const rt = await startRunner();
  try {
    const calc = ex('calc');
    const digest = await rt.put(calc);
    await rt.link.deploy({ app: 'one', digest, kind: 'reactor', options: { args: [], env: {}, preopens: [], limits: {}, pool: { min: 1, max: 1, idleMs: 600_000 } } });
    await new Promise((r) => setTimeout(r, 500));
    const before = rssKb(rt.child.pid!);
    const n = 20;
    await rt.link.deploy({ app: 'many', digest, kind: 'reactor', options: { args: [], env: {}, preopens: [], limits: {}, pool: { min: n, max: n, idleMs: 600_000 } } });
    await new Promise((r) => setTimeout(r, 1000));
    const after = rssKb(rt.child.pid!);
    const apps = await rt.link.apps();
    const instances = apps.find((a) => a.app === 'many')!.instances;
    // calc declares 2 pages (128 KiB) of linear memory.
    const linearMb = (2 * 65536) / 1048576;
    return { perInstanceMb: (after - before) / 1024 / instances - linearMb, linearMb, instances };
  } finally {
    await rt.stop();
  }
}

type Result<T> = { ok: true; value: T } | { ok: false; error: string };
async function attempt<T>(f: () => Promise<T> | T): Promise<Result<T>> {
  try {
    return { ok: true, value: await f() };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

function row(name: string, s: Summary | undefined, unit: string, note = ''): string[] {
  return s ? [name, `${fmt(s.p50)} ${unit}`, `${fmt(s.p99)} ${unit}`, `${fmt(s.mean)} ± ${fmt(s.sePct, 1)}%`, String(s.n), note] : [name, 'Errored', '', '', '', note];
}

async function main(): Promise<void> {
  const rt = await startRunner();
  let starts: Result<{ cold: number[]; warm: number[] }>;
  let calls1: Result<number[]>;
  let calls64: Result<number[]>;
  let calls256: Result<number[]>;
  let nbodyRunner: Result<number[]>;
  try {
    starts = await attempt(() => startLatency(rt));
    calls1 = await attempt(() => callRate(rt, 1));
    calls64 = await attempt(() => callRate(rt, 64));
    calls256 = await attempt(() => callRate(rt, 256));
    nbodyRunner = await attempt(() => runnerNbody(rt));
  } finally {
    await rt.stop();
  }
  const nbodyNative = await attempt(nativeNbody);
  const mem = await attempt(memoryPerInstance);

  const cold = starts.ok ? summarize(starts.value.cold) : undefined;
  const warm = starts.ok ? summarize(starts.value.warm) : undefined;
  const c1 = calls1.ok ? summarize(calls1.value) : undefined;
  const c64 = calls64.ok ? summarize(calls64.value) : undefined;
  const c256 = calls256.ok ? summarize(calls256.value) : undefined;
  const nr = nbodyRunner.ok ? summarize(nbodyRunner.value) : undefined;
  const nn = nbodyNative.ok ? summarize(nbodyNative.value) : undefined;
  const errors = [starts, calls1, calls64, calls256, nbodyRunner, nbodyNative, mem].filter((r): r is { ok: false; error: string } => !r.ok).map((r) => r.error);

  const md = [
    '## Runner (issue 4)',
    '',
    `Command: \`npm run bench:runner\` (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} vCPU, Node ${process.version}). A real runner process on a /dev/shm ring (futex wake-ups); every request goes through the agent-side RunnerLink.`,
    '',
    table(['measure', 'p50', 'p99', 'mean ± se', 'samples', 'note'], [
      row('start -> first output, cold (new module)', cold, 'ms', 'compile + instance'),
      row('start -> first output, warm (pooled)', warm, 'ms', warm && cold ? `${fmt(cold.p50 / warm.p50, 1)}× faster than cold` : ''),
      row('warm calls/s, 1 in flight', c1, '/s'),
      row('warm calls/s, 64 in flight', c64, '/s', 'calc.add on one instance'),
      row('warm calls/s, 256 in flight', c256, '/s', 'calls issued together share a CALL_BATCH_BIN frame'),
      row(`nbody ${NBODY_N} under the runner`, nr, 'ms', nr && nn ? `${fmt(nr.p50 / nn.p50, 2)}× native` : ''),
      row(`nbody ${NBODY_N} native (clang -O2)`, nn, 'ms'),
    ]),
    '',
    mem.ok
      ? `Memory per warm pooled instance beyond its linear memory: **${fmt(mem.value.perInstanceMb, 2)} MB** (runner RSS growth over ${mem.value.instances} pooled calc instances, minus ${fmt(mem.value.linearMb, 3)} MB of linear memory each).`
      : `Memory per warm pooled instance: Errored (${mem.error}).`,
    ...(errors.length ? ['', `Errored: ${errors.join('; ')}`] : []),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (process.env.BENCH_WRITE !== '0') process.stderr.write(`wrote ${writeSection('runner', md)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:runner failed: ${String(err)}\n`);
    process.exit(1);
  },
);
