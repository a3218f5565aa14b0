/**
 * A stand-in for the `wasmedge` CLI, for testing the WasmEdge adapter where WasmEdge is not installed. It is NOT
 * WasmEdge: it parses the same command line, records its argv (to $FAKE_WASMEDGE_LOG, one JSON line per run),
 * and emulates the observable contract of `wasmedge run` (0.13+): modules really run (Node's WebAssembly and
 * node:wasi), the WASI exit code comes back as the process status, load/validate/instantiate failures exit 1 with
 * an `[error] … failed` log line, traps / `--time-limit` / `--gas-limit` exit 134 with the log lines WasmEdge
 * prints, results in `--reactor` mode are printed one per line (i32 as uint32, i64 as uint64, floats shortest),
 * and `--enable-all-statistics` prints the statistics block. Logs go to stdout with spdlog's timestamp prefix, as
 * WasmEdge's do. Gas is counted with this project's own instrumentation (so its counts are V8-engine counts).
 *
 * Usage (the test writes a `wasmedge` shell wrapper on PATH): node --no-warnings engine-fake-wasmedge.js ARGS…
 */
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { WASI } from 'node:wasi';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { GAS_LEFT_EXPORT, GAS_OUT_EXPORT, instrumentGas } from '../../runner-proto/src/engine/gas.js';
import { limitMemoryPages } from '../../runner-proto/src/engine/memory-limit.js';
import { exportedFunctions, summarize } from '../../runner-proto/src/engine/wasm-binary.js';
import { type WasmGlobal, type WasmImports, type WasmInstance, type WasmModule, wasmApi } from '../../runner-proto/src/wasi/index.js';

const Wasm = wasmApi();

interface Job {
  readonly file: string;
  readonly bytes: Uint8Array;
  readonly args: string[];
  readonly env: Record<string, string>;
  readonly preopens: Record<string, string>;
  readonly reactor: boolean;
  readonly gas: number | undefined;
  readonly stats: boolean;
  readonly pages: number | undefined;
}

type Report =
  | { kind: 'exit'; code: number; count?: number }
  | { kind: 'trap'; message: string; count?: number }
  | { kind: 'gas'; count: number }
  | { kind: 'load'; stage: string; message: string }
  | { kind: 'results'; lines: string[]; count?: number };

function stamp(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `[${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}]`;
}

function log(level: string, text: string): void {
  process.stdout.write(`${stamp()} [${level}] ${text}\n`);
}

/** Shortest decimal that reads back as the same float32, as fmt prints a float. */
function shortestF32(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

function shortestF64(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  return String(v);
}

// ---- worker: runs the module ---------------------------------------------------------------------------

function runJob(job: Job): Report {
  let bytes = job.bytes;
  let module: WasmModule;
  try {
    if (job.pages !== undefined) {
      const limited = limitMemoryPages(bytes, job.pages);
      if (!limited.ok) return { kind: 'load', stage: 'instantiation', message: 'memory limit exceeded' };
      bytes = limited.bytes;
    }
    const counting = job.gas !== undefined || job.stats;
    if (counting) bytes = instrumentGas(bytes).bytes;
    module = new Wasm.Module(bytes);
  } catch (err) {
    return { kind: 'load', stage: 'loading', message: err instanceof Error ? err.message : String(err) };
  }
  const wasi = new WASI({ version: 'preview1', args: job.args, env: job.env, preopens: job.preopens, returnOnExit: true });
  let instance: WasmInstance;
  try {
    instance = new Wasm.Instance(module, wasi.getImportObject() as WasmImports);
  } catch (err) {
    return { kind: 'load', stage: 'instantiation', message: err instanceof Error ? err.message : String(err) };
  }
  const left = instance.exports[GAS_LEFT_EXPORT] as WasmGlobal | undefined;
  const out = instance.exports[GAS_OUT_EXPORT] as WasmGlobal | undefined;
  const budget = BigInt(job.gas ?? 2 ** 53);
  if (left !== undefined) left.value = budget;
  const count = (): number | undefined => (left === undefined ? undefined : Number(budget - (left.value as bigint)));
  const failed = (err: unknown): Report => {
    if (out !== undefined && out.value === 1) return { kind: 'gas', count: count() ?? 0 };
    return { kind: 'trap', message: err instanceof Error ? err.message : String(err), ...(count() !== undefined ? { count: count() } : {}) };
  };
  if (!job.reactor) {
    try {
      const code = wasi.start(instance);
      return { kind: 'exit', code, ...(count() !== undefined ? { count: count() } : {}) };
    } catch (err) {
      return failed(err);
    }
  }
  const [fn, ...rawArgs] = job.args.slice(1);
  const sigs = exportedFunctions(summarize(job.bytes));
  const sig = fn === undefined ? undefined : sigs.get(fn);
  try {
    wasi.initialize(instance);
    const f = instance.exports[fn ?? ''] as ((...a: unknown[]) => unknown) | undefined;
    if (f === undefined || sig === undefined) throw new Error('function not found');
    const args = sig.params.map((t, i) => {
      const text = rawArgs[i] ?? '0';
      if (t === 'i32') return Number(BigInt.asIntN(32, BigInt(text)));
      if (t === 'i64') return BigInt.asIntN(64, BigInt(text));
      return text === 'nan' ? NaN : text === 'inf' ? Infinity : text === '-inf' ? -Infinity : Number(text);
    });
    const ret = f(...args);
    const values = sig.results.length === 1 ? [ret] : sig.results.length === 0 ? [] : (ret as unknown[]);
    const lines = sig.results.map((t, i) => {
      const v = values[i];
      if (t === 'i32') return String((v as number) >>> 0);
      if (t === 'i64') return BigInt.asUintN(64, v as bigint).toString();
      if (t === 'f32') return shortestF32(v as number);
      return shortestF64(v as number);
    });
    return { kind: 'results', lines, ...(count() !== undefined ? { count: count() } : {}) };
  } catch (err) {
    return failed(err);
  }
}

if (!isMainThread) {
  parentPort?.postMessage(runJob(workerData as Job));
} else {
  main();
}

// ---- main: the command line ------------------------------------------------------------------------------

function main(): void {
  const argv = process.argv.slice(2);
  const record = process.env.FAKE_WASMEDGE_LOG;
  if (record !== undefined) appendFileSync(record, `${JSON.stringify(argv)}\n`);
  if (argv[0] === '--version') {
    process.stdout.write(`wasmedge version ${process.env.FAKE_WASMEDGE_VERSION ?? '0.14.1'}\n`);
    process.exit(0);
  }
  const withValue = new Set(['--dir', '--env', '--memory-page-limit', '--gas-limit', '--time-limit', '--module']);
  const toggles = new Set(['--reactor', '--enable-all-statistics', '--enable-instruction-count', '--enable-gas-measuring', '--enable-time-measuring', '--enable-all']);
  let i = argv[0] === 'run' ? 1 : 0;
  const dirs: string[] = [];
  const envs: string[] = [];
  let reactor = false;
  let stats = false;
  let gas: number | undefined;
  let time: number | undefined;
  let pages: number | undefined;
  for (; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-')) break;
    if (toggles.has(a)) {
      if (a === '--reactor') reactor = true;
      if (a === '--enable-all-statistics' || a === '--enable-instruction-count') stats = true;
      continue;
    }
    if (!withValue.has(a)) {
      process.stdout.write(`unknown option: ${a.replace(/^-+/, '')}\n`);
      process.exit(1);
    }
    const v = argv[++i] ?? '';
    if (a === '--dir') dirs.push(v);
    else if (a === '--env') envs.push(v);
    else if (a === '--gas-limit') gas = Number(v);
    else if (a === '--time-limit') time = Number(v);
    else if (a === '--memory-page-limit') pages = Number(v);
  }
  const file = argv[i];
  if (file === undefined) {
    process.stderr.write('missing WASM_OR_SO\n');
    process.exit(1);
  }
  const rest = argv.slice(i + 1);
  if (reactor && rest.length === 0) {
    process.stderr.write('A function name is required when reactor mode is enabled.\n');
    process.exit(1);
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch {
    log('error', 'loading failed: read error, Code: 0x21');
    process.exit(1);
  }
  const preopens: Record<string, string> = {};
  for (const d of dirs) {
    const [guest = '', host = guest] = d.split(':');
    preopens[guest] = host;
  }
  const env: Record<string, string> = {};
  for (const e of envs) {
    const at = e.indexOf('=');
    env[e.slice(0, at)] = e.slice(at + 1);
  }
  const argv0 = path.basename(file).replace(/\.[^.]*$/, '') + '.wasm';
  const job: Job = { file, bytes, args: [argv0, ...rest], env, preopens, reactor, gas, stats: stats || gas !== undefined, pages };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  let timer: NodeJS.Timeout | undefined;
  const statistics = (count: number | undefined): void => {
    if (!stats || count === undefined) return;
    log('info', '====================  Statistics  ====================');
    log('info', ' Total execution time: 1000 ns');
    log('info', ` Executed wasm instructions count: ${count}`);
    log('info', ` Gas costs: ${count}`);
    log('info', '=======================   End   ======================');
  };
  // FAKE_WASMEDGE_IGNORE_TIME_LIMIT: behave like a CLI that never stops by itself (tests the adapter's backstop).
  if (time !== undefined && time > 0 && process.env.FAKE_WASMEDGE_IGNORE_TIME_LIMIT === undefined) {
    timer = setTimeout(() => {
      void worker.terminate().then(() => {
        log('error', 'execution failed: interrupted, Code: 0x0e');
        process.exit(134);
      });
    }, time);
  }
  worker.once('message', (report: Report) => {
    clearTimeout(timer);
    switch (report.kind) {
      case 'exit':
        statistics(report.count);
        process.exitCode = report.code;
        break;
      case 'results':
        for (const line of report.lines) process.stdout.write(`${line}\n`);
        statistics(report.count);
        process.exitCode = 0;
        break;
      case 'trap':
        log('error', `execution failed: ${report.message}, Code: 0x89`);
        statistics(report.count);
        process.exitCode = 134;
        break;
      case 'gas':
        log('error', 'execution failed: cost limit exceeded, Code: 0x8b');
        statistics(report.count);
        process.exitCode = 134;
        break;
      case 'load':
        log('error', `${report.stage} failed: ${report.message}, Code: 0x62`);
        process.exitCode = 1;
        break;
    }
  });
  worker.once('error', (err) => {
    clearTimeout(timer);
    log('error', `execution failed: ${err.message}, Code: 0x89`);
    process.exitCode = 134;
  });
}
