/**
 * The WasmEdge engine adapter: the engine interface over the `wasmedge` CLI, for hosts where WasmEdge is
 * installed. Each run (and each reactor call) is one `wasmedge` process:
 *
 * - compile() writes the module into a cache directory by digest (WasmEdge takes a file) and reads its exports.
 * - run() spawns `wasmedge [run] <flags> <file> <args>` with the flags from `wasmedgeArgs()` (unit-tested without
 *   WasmEdge), streams stdout/stderr, and maps the exit status back to the engine contract: the WASI exit code;
 *   1 for load/validate/instantiate failures; 134 for traps, time limits and exhausted gas.
 * - WasmEdge logs (errors, the statistics block) through spdlog, which writes to stdout with a
 *   `[YYYY-MM-DD HH:MM:SS.mmm] [level]` prefix; those lines are split out of the module's output (LogSplitter)
 *   and read to tell gas from a time limit from a trap, and to get the instruction count.
 * - A reactor instance is a promise, not a process: every call is `wasmedge --reactor <file> <fn> <args>`, which
 *   runs `_initialize` and the function in a fresh process and prints the results one per line. State does not
 *   survive between calls (the CLI offers no way to keep an instance); use the V8 engine for warm reactors.
 *
 * Limits the CLI cannot express are enforced here: the output limit (the process is killed when it is hit), and a
 * backstop kill shortly after --time-limit in case WasmEdge does not stop by itself.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { AgentError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import {
  type CallResult,
  type CompiledModule,
  type Engine,
  EXIT_CODE_ABORT,
  EXIT_CODE_LOAD,
  type ExitReason,
  type ReactorInstance,
  type RunEvents,
  type RunLimits,
  type RunningInstance,
  type RunRequest,
  type RunResult,
  type WasmValue,
} from './types.js';
import { type CallableExport, callableExports, encodeArgs } from './v8-reactor.js';
import { exportedFunctions, type FunctionSignature, summarize } from './wasm-binary.js';

/** WasmEdge parses --gas-limit and --memory-page-limit as a C++ int. */
const CLI_INT_MAX = 2_147_483_647;

export class WasmEdgeArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmEdgeArgsError';
  }
}

export interface WasmEdgeArgsOptions {
  /** The module file WasmEdge loads (absolute). */
  readonly file: string;
  /** `command` runs `_start` with the request's args; `reactor` calls `fn` with `fnArgs`. */
  readonly mode: 'command' | 'reactor';
  readonly fn?: string;
  /** Reactor arguments, already formatted as WasmEdge parses them (see `formatCliValue`). */
  readonly fnArgs?: readonly string[];
  /** Prefix the `run` subcommand (WasmEdge ≥ 0.13); older CLIs take the file directly. Default true. */
  readonly subcommand?: boolean;
  /** Extra flags before the file, e.g. proposal switches (`--enable-threads`). */
  readonly extraFlags?: readonly string[];
  /** Overrides request.limits (a reactor call's own limits). */
  readonly limits?: RunLimits;
}

function positiveInt(value: number | undefined, flag: string, max: number): string | undefined {
  if (value === undefined || value <= 0) return undefined;
  if (!Number.isFinite(value)) throw new WasmEdgeArgsError(`${flag} must be finite, got ${value}`);
  const n = Math.floor(value);
  if (n > max) throw new WasmEdgeArgsError(`${flag} ${n} exceeds what the wasmedge CLI accepts (${max})`);
  return String(n);
}

/**
 * The `wasmedge` argv (without the binary) for a request. Pure: no file system, no WasmEdge needed.
 * Mapping: preopens → `--dir guest:host[:readonly]`; env → `--env K=V`; limits.memoryPages →
 * `--memory-page-limit`; limits.gas → `--gas-limit` plus `--enable-all-statistics` (for the instruction
 * count); limits.timeMs → `--time-limit`; reactor mode → `--reactor <file> <fn> <args…>`. Everything after the
 * file is taken literally by WasmEdge's parser (the first positional ends option parsing), so module arguments
 * that look like flags are safe. Throws WasmEdgeArgsError for what the CLI cannot express.
 */
export function wasmedgeArgs(request: RunRequest, options: WasmEdgeArgsOptions): string[] {
  const argv: string[] = [];
  if (options.subcommand ?? true) argv.push('run');
  for (const p of request.preopens ?? []) {
    // WasmEdge splits the value on ':'; a colon inside either path cannot be expressed.
    if (p.guest.includes(':') || p.host.includes(':')) throw new WasmEdgeArgsError(`--dir cannot express a path containing ':' (${p.guest} -> ${p.host})`);
    if (p.guest === '' || p.host === '') throw new WasmEdgeArgsError('--dir needs a guest and a host path');
    argv.push('--dir', `${p.guest}:${p.host}${p.readonly ? ':readonly' : ''}`);
  }
  for (const [key, value] of Object.entries(request.env)) {
    if (key === '' || key.includes('=')) throw new WasmEdgeArgsError(`environment variable name ${JSON.stringify(key)} is invalid`);
    if (key.includes('\0') || value.includes('\0')) throw new WasmEdgeArgsError(`environment variable ${key} contains a NUL byte`);
    argv.push('--env', `${key}=${value}`);
  }
  const limits = options.limits ?? request.limits;
  const pages = positiveInt(limits?.memoryPages, '--memory-page-limit', CLI_INT_MAX);
  if (pages !== undefined) argv.push('--memory-page-limit', pages);
  const gas = positiveInt(limits?.gas, '--gas-limit', CLI_INT_MAX);
  if (gas !== undefined) argv.push('--gas-limit', gas, '--enable-all-statistics');
  const time = positiveInt(limits?.timeMs, '--time-limit', Number.MAX_SAFE_INTEGER);
  if (time !== undefined) argv.push('--time-limit', time);
  if (options.mode === 'reactor') argv.push('--reactor');
  argv.push(...(options.extraFlags ?? []));
  argv.push(options.file);
  if (options.mode === 'reactor') {
    if (options.fn === undefined || options.fn === '') throw new WasmEdgeArgsError('reactor mode needs a function name');
    argv.push(options.fn, ...(options.fnArgs ?? []));
  } else {
    argv.push(...request.args);
  }
  for (const a of argv) if (a.includes('\0')) throw new WasmEdgeArgsError('arguments cannot contain NUL bytes');
  return argv;
}

/** A value as WasmEdge's reactor mode parses it (std::stol / stoll / stof / stod). */
export function formatCliValue(type: 'i32' | 'i64' | 'f32' | 'f64', value: number | bigint): string {
  if (type === 'i32' || type === 'i64') return String(value);
  const v = Number(value);
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0';
  // Shortest round-trip form; for f32 the value was already rounded, and stof gets the same float back.
  return String(v);
}

/** Parses one printed result (i32 as uint32, i64 as uint64, floats as fmt prints them). */
export function parseCliValue(type: 'i32' | 'i64' | 'f32' | 'f64', text: string): WasmValue | undefined {
  const t = text.trim();
  if (type === 'i32') {
    if (!/^-?\d+$/.test(t)) return undefined;
    return { type, value: Number(BigInt.asIntN(32, BigInt(t))) };
  }
  if (type === 'i64') {
    if (!/^-?\d+$/.test(t)) return undefined;
    return { type, value: BigInt.asIntN(64, BigInt(t)).toString() };
  }
  const lower = t.toLowerCase();
  let v: number;
  if (lower === 'nan' || lower === '-nan') v = NaN;
  else if (lower === 'inf' || lower === 'infinity') v = Infinity;
  else if (lower === '-inf' || lower === '-infinity') v = -Infinity;
  else if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) v = Number(t);
  else return undefined;
  return { type, value: type === 'f32' ? Math.fround(v) : v };
}

// ---- log lines ---------------------------------------------------------------------------------------------

/** `[2021-12-09 16:03:33.261] [` with 0 standing for a digit. */
const MARKER_TEMPLATE = '[0000-00-00 00:00:00.000] [';
const MARKER = /\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[/;

function couldStartMarker(tail: string): boolean {
  for (let i = 0; i < tail.length && i < MARKER_TEMPLATE.length; i++) {
    const want = MARKER_TEMPLATE[i] as string;
    const c = tail[i] as string;
    if (want === '0' ? c < '0' || c > '9' : c !== want) return false;
  }
  return true;
}

/**
 * Splits WasmEdge's spdlog lines out of a stdout stream. A log line starts with the timestamp marker (possibly
 * mid-line, after output that did not end with a newline) and runs to the end of its line. Output is held back
 * only while its tail could still become a marker, so ordinary output streams through at once. Works on latin1
 * strings, which map bytes one to one.
 */
export class LogSplitter {
  private held = '';
  private inLog = false;
  log = '';

  /** Returns the module's own bytes in this chunk. */
  push(chunk: Uint8Array): Uint8Array {
    let text = this.held + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    this.held = '';
    let out = '';
    while (text.length > 0) {
      if (this.inLog) {
        const nl = text.indexOf('\n');
        if (nl < 0) {
          this.log += text;
          text = '';
        } else {
          this.log += text.slice(0, nl + 1);
          text = text.slice(nl + 1);
          this.inLog = false;
        }
        continue;
      }
      const m = MARKER.exec(text);
      if (m !== null) {
        out += text.slice(0, m.index);
        text = text.slice(m.index);
        this.inLog = true;
        continue;
      }
      const bracket = text.lastIndexOf('[', text.length - 1);
      if (bracket >= 0 && text.length - bracket < MARKER_TEMPLATE.length && couldStartMarker(text.slice(bracket))) {
        out += text.slice(0, bracket);
        this.held = text.slice(bracket);
      } else {
        out += text;
      }
      text = '';
    }
    return Buffer.from(out, 'latin1');
  }

  /** The held-back tail, at end of stream. */
  end(): Uint8Array {
    const rest = this.held;
    this.held = '';
    return Buffer.from(rest, 'latin1');
  }
}

export interface WasmEdgeVerdict {
  readonly reason: ExitReason;
  readonly exitCode: number;
  readonly message?: string;
}

/** First `[error]` line of a log, without its prefix. */
function firstError(log: string): string | undefined {
  const m = /\[error\]\s*(.*)/.exec(log);
  return m?.[1]?.trim();
}

/**
 * Maps a finished `wasmedge` process to the engine contract. `log` is the spdlog text, `stderr` the tail of
 * stderr. Older CLIs exit 1 for traps too; the log says which it was, so the result is normalised to 134.
 */
export function classifyExit(code: number | null, signal: NodeJS.Signals | null, log: string, stderr: string, limits: RunLimits | undefined): WasmEdgeVerdict {
  const text = `${log}\n${stderr}`;
  const error = firstError(text);
  if (signal !== null) return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: `wasmedge ended by ${signal}` };
  const executionFailed = /execution failed/i.test(text);
  if (/cost limit exceeded/i.test(text) && (code === EXIT_CODE_ABORT || code === 1)) {
    return { reason: 'gas', exitCode: EXIT_CODE_ABORT, message: `gas limit of ${limits?.gas ?? '?'} instructions exhausted` };
  }
  if (/\binterrupted\b/i.test(text) && (code === EXIT_CODE_ABORT || code === 1)) {
    return { reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `time limit of ${limits?.timeMs ?? '?'} ms exceeded` };
  }
  if (code === EXIT_CODE_ABORT || (code === 1 && executionFailed)) {
    return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: error ?? 'execution aborted' };
  }
  if (code === 1 && /(loading|validation|instantiation) failed|function name is required|unknown option|positional argument|invalid argument/i.test(text)) {
    return { reason: 'load', exitCode: EXIT_CODE_LOAD, message: error ?? stderr.trim().split('\n')[0] ?? 'wasmedge could not load the module' };
  }
  return { reason: 'exit', exitCode: code ?? EXIT_CODE_ABORT };
}

/** The instruction count from `--enable-all-statistics` output (the last one printed). */
export function parseInstructions(log: string): number | undefined {
  const counts = [...log.matchAll(/Executed wasm instructions count:\s*(\d+)/g)];
  const last = counts[counts.length - 1] ?? [...log.matchAll(/Gas costs:\s*(\d+)/g)].pop();
  return last?.[1] === undefined ? undefined : Number(last[1]);
}

// ---- detection ---------------------------------------------------------------------------------------------

export interface WasmEdgeInfo {
  readonly available: boolean;
  readonly binary: string;
  readonly version?: string;
  /** Why it is not available. */
  readonly detail?: string;
}

/** Runs `wasmedge --version` (synchronously: used at startup to choose an engine). */
export function detectWasmEdge(binary = 'wasmedge'): WasmEdgeInfo {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { available: false, binary, detail: code === 'ENOENT' ? `${binary} is not on PATH` : `${binary} --version failed: ${r.error.message}` };
  }
  if (r.status !== 0) return { available: false, binary, detail: `${binary} --version exited with ${String(r.status ?? r.signal)}` };
  const m = /(\d+\.\d+\.\d+[^\s]*)/.exec(`${r.stdout}`);
  return m?.[1] === undefined ? { available: true, binary } : { available: true, binary, version: m[1] };
}

function versionAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? '');
  if (m === null) return true; // unknown: assume a current CLI
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

// ---- the engine --------------------------------------------------------------------------------------------

export interface WasmEdgeEngineOptions {
  /** The CLI; default `wasmedge` from PATH. */
  readonly binary?: string;
  /** Where modules are written for WasmEdge to load. Default `<tmpdir>/wasm-runner-wasmedge`. */
  readonly cacheDir?: string;
  readonly logger?: Logger;
  /** Extra flags for every run (proposal switches, `--run-mode`…). */
  readonly extraFlags?: readonly string[];
  /** How long after --time-limit the process may take to stop before it is killed. Default 1000 ms. */
  readonly killGraceMs?: number;
}

interface Entry {
  readonly digest: string;
  readonly dir: string;
  readonly bytes: Uint8Array;
  readonly kind: CompiledModule['kind'];
  readonly exports: Map<string, CallableExport | string> | string;
}

const STDERR_TAIL = 16 * 1024;

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120) || 'module';
}

export class WasmEdgeEngine implements Engine {
  readonly name = 'wasmedge';
  readonly version: string | undefined;
  private readonly binary: string;
  private readonly cacheDir: string;
  private readonly log: Logger;
  private readonly extraFlags: readonly string[];
  private readonly killGraceMs: number;
  private readonly subcommand: boolean;
  private readonly modules = new Map<string, Entry>();
  private readonly children = new Set<ChildProcessWithoutNullStreams>();
  private closed = false;

  constructor(options: WasmEdgeEngineOptions = {}) {
    this.binary = options.binary ?? 'wasmedge';
    const info = detectWasmEdge(this.binary);
    if (!info.available) {
      throw new AgentError('AGT_ERR_CONFIG_INVALID', `the wasmedge engine needs the WasmEdge CLI: ${info.detail ?? 'not found'} (install WasmEdge or use --engine v8)`, {
        field: 'engine',
      });
    }
    this.version = info.version;
    this.subcommand = versionAtLeast(info.version, 0, 13);
    this.cacheDir = options.cacheDir ?? path.join(tmpdir(), 'wasm-runner-wasmedge');
    this.log = options.logger ?? createLogger('engine');
    this.extraFlags = options.extraFlags ?? [];
    this.killGraceMs = options.killGraceMs ?? 1000;
  }

  async compile(digest: string, bytes: Uint8Array): Promise<CompiledModule> {
    if (this.closed) throw new AgentError('AGT_ERR_RUN_LOAD', 'the engine is closed', { digest });
    const known = this.modules.get(digest);
    if (known !== undefined) return { digest, kind: known.kind };
    let exports: Map<string, FunctionSignature>;
    try {
      exports = exportedFunctions(summarize(bytes));
    } catch (err) {
      throw new AgentError('AGT_ERR_RUN_LOAD', `module ${digest} does not parse: ${err instanceof Error ? err.message : String(err)}`, { digest }, { cause: err });
    }
    const kind: CompiledModule['kind'] = exports.has('_start') ? 'command' : exports.has('_initialize') ? 'reactor' : 'library';
    const dir = path.join(this.cacheDir, safeName(digest));
    mkdirSync(dir, { recursive: true });
    this.modules.set(digest, { digest, dir, bytes: bytes.slice(), kind, exports: callableExports(exports).byName });
    return { digest, kind };
  }

  /**
   * The file for a run: WasmEdge gives the module argv[0] = the file name with its extension replaced by
   * `.wasm`, so the file is named after the request's argv0 to keep argv[0] what the caller asked for.
   */
  private fileFor(entry: Entry, argv0: string): string {
    const stem = safeName(path.basename(argv0).replace(/\.[^.]*$/, '')) || 'module';
    const file = path.join(entry.dir, `${stem}.wasm`);
    if (!existsSync(file)) {
      mkdirSync(entry.dir, { recursive: true });
      const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
      writeFileSync(tmp, entry.bytes);
      renameSync(tmp, file);
    }
    return file;
  }

  run(module: CompiledModule, request: RunRequest, events: RunEvents): RunningInstance {
    const entry = this.modules.get(module.digest);
    const started = performance.now();
    const fail = (message: string): RunningInstance => ({
      result: Promise.resolve({ reason: 'load', exitCode: EXIT_CODE_LOAD, message, stats: { wallMs: performance.now() - started, peakPages: 0 } }),
      kill: () => {},
    });
    if (this.closed) return fail('the engine is closed');
    if (entry === undefined) return fail(`module ${module.digest} is not compiled (or was forgotten)`);
    if (entry.kind !== 'command') return fail(`module ${module.digest} is a ${entry.kind}: it has no _start to run`);
    let argv: string[];
    try {
      argv = wasmedgeArgs(request, { file: this.fileFor(entry, request.argv0), mode: 'command', subcommand: this.subcommand, extraFlags: this.extraFlags });
    } catch (err) {
      return fail(err instanceof Error ? err.message : String(err));
    }
    const proc = this.spawnProcess(argv, request.stdin, request.limits, events, 'stream');
    return { result: proc.result.then((r) => r.run), kill: (graceMs?: number) => proc.kill(graceMs ?? 0) };
  }

  async instantiate(module: CompiledModule, request: RunRequest, events: RunEvents): Promise<ReactorInstance> {
    const entry = this.modules.get(module.digest);
    if (this.closed) throw new AgentError('AGT_ERR_RUN_LOAD', 'the engine is closed', { digest: module.digest });
    if (entry === undefined) throw new AgentError('AGT_ERR_RUN_LOAD', `module ${module.digest} is not compiled (or was forgotten)`, { digest: module.digest });
    if (typeof entry.exports === 'string') throw new AgentError('AGT_ERR_RUN_LOAD', entry.exports, { digest: module.digest });
    try {
      // Checks the flags once, so a request the CLI cannot express fails here rather than on every call.
      wasmedgeArgs(request, { file: 'x.wasm', mode: 'reactor', fn: 'f' });
    } catch (err) {
      throw new AgentError('AGT_ERR_RUN_LOAD', err instanceof Error ? err.message : String(err), { digest: module.digest });
    }
    return new WasmEdgeReactor(this, entry, request, events);
  }

  forget(digest: string): void {
    this.modules.delete(digest);
  }

  async close(): Promise<void> {
    this.closed = true;
    const exits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('close', () => resolve());
          c.kill('SIGKILL');
        }),
    );
    await Promise.all(exits);
  }

  /** @internal One reactor call: a `wasmedge --reactor` process. */
  call(entry: Entry, request: RunRequest, events: RunEvents, fn: CallableExport, args: (number | bigint)[], limits: RunLimits | undefined): Promise<{ run: RunResult; stdout: Uint8Array }> {
    const types = fn.sig.params as ('i32' | 'i64' | 'f32' | 'f64')[];
    const argv = wasmedgeArgs(request, {
      file: this.fileFor(entry, request.argv0),
      mode: 'reactor',
      fn: fn.name,
      fnArgs: args.map((a, i) => formatCliValue(types[i] as 'i32', a)),
      subcommand: this.subcommand,
      extraFlags: this.extraFlags,
      limits,
    });
    return this.spawnProcess(argv, undefined, limits, events, 'collect').result;
  }

  private spawnProcess(
    argv: string[],
    stdin: Uint8Array | undefined,
    limits: RunLimits | undefined,
    events: RunEvents,
    stdoutMode: 'stream' | 'collect',
  ): { result: Promise<{ run: RunResult; stdout: Uint8Array }>; kill: (graceMs: number) => void } {
    const started = performance.now();
    const child = spawn(this.binary, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    const splitter = new LogSplitter();
    const collected: Uint8Array[] = [];
    let stderrTail = '';
    let outputUsed = 0;
    let forced: WasmEdgeVerdict | undefined;
    let startMs: number | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const outputLimit = limits?.outputBytes !== undefined && limits.outputBytes > 0 ? limits.outputBytes : undefined;
    const force = (verdict: WasmEdgeVerdict): void => {
      forced ??= verdict;
      child.kill('SIGKILL');
    };
    const emit = (fd: 1 | 2, bytes: Uint8Array): void => {
      if (bytes.length === 0 || forced !== undefined) return;
      let chunk = bytes;
      if (outputLimit !== undefined && outputUsed + chunk.length > outputLimit) {
        chunk = chunk.subarray(0, Math.max(0, outputLimit - outputUsed));
        force({ reason: 'output', exitCode: EXIT_CODE_ABORT, message: `output exceeded the limit of ${outputLimit} bytes` });
      }
      outputUsed += chunk.length;
      if (chunk.length === 0) return;
      try {
        if (fd === 1 && stdoutMode === 'collect') collected.push(Uint8Array.from(chunk));
        else if (fd === 1) events.onStdout(Uint8Array.from(chunk));
        else events.onStderr(Uint8Array.from(chunk));
      } catch (err) {
        this.log.warn({ err }, 'an output listener threw; output continues');
      }
    };
    child.on('spawn', () => {
      startMs = performance.now() - started;
    });
    child.stdout.on('data', (chunk: Buffer) => emit(1, splitter.push(chunk)));
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
      emit(2, chunk);
    });
    child.stdin.on('error', () => {}); // the module may exit without reading stdin (EPIPE)
    child.stdin.end(stdin === undefined ? undefined : Buffer.from(stdin));
    const timeMs = limits?.timeMs;
    const backstop =
      timeMs !== undefined && timeMs > 0
        ? setTimeout(() => force({ reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `time limit of ${timeMs} ms exceeded` }), timeMs + this.killGraceMs)
        : undefined;
    const result = new Promise<{ run: RunResult; stdout: Uint8Array }>((resolve) => {
      let spawnError: Error | undefined;
      child.on('error', (err) => {
        spawnError = err;
      });
      child.on('close', (code, signal) => {
        this.children.delete(child);
        clearTimeout(backstop);
        clearTimeout(killTimer);
        emit(1, splitter.end());
        const verdict: WasmEdgeVerdict =
          forced ??
          (spawnError !== undefined
            ? { reason: 'load', exitCode: EXIT_CODE_LOAD, message: `cannot start ${this.binary}: ${spawnError.message}` }
            : classifyExit(code, signal, splitter.log, stderrTail, limits));
        const instructions = limits?.gas !== undefined && limits.gas > 0 ? parseInstructions(splitter.log) : undefined;
        const run: RunResult = {
          reason: verdict.reason,
          exitCode: verdict.exitCode,
          ...(verdict.message !== undefined ? { message: verdict.message } : {}),
          stats: {
            wallMs: performance.now() - started,
            // The CLI does not report memory size.
            peakPages: 0,
            ...(instructions !== undefined ? { instructions } : {}),
            start: 'cold',
            ...(startMs !== undefined ? { startMs } : {}),
          },
        };
        resolve({ run, stdout: Buffer.concat(collected) });
      });
    });
    return {
      result,
      kill: (graceMs: number) => {
        const stop = (): void => force({ reason: 'killed', exitCode: EXIT_CODE_ABORT, message: 'killed' });
        if (graceMs <= 0) stop();
        else killTimer ??= setTimeout(stop, graceMs);
      },
    };
  }
}

/**
 * A reactor over the CLI: each call is a fresh `wasmedge --reactor` process (`_initialize`, then the function),
 * so nothing persists between calls. A call that traps, times out or runs out of gas ends the instance, as on V8.
 */
class WasmEdgeReactor implements ReactorInstance {
  readonly start = 'cold' as const;
  private state: 'ready' | 'ended' = 'ready';
  private ended: string | undefined;

  constructor(
    private readonly engine: WasmEdgeEngine,
    private readonly entry: Entry,
    private readonly request: RunRequest,
    private readonly events: RunEvents,
  ) {}

  get alive(): boolean {
    return this.state === 'ready';
  }

  memoryBytes(): number {
    return 0;
  }

  async call(fn: string, args: readonly WasmValue[], limits?: Pick<RunLimits, 'timeMs' | 'gas'>): Promise<CallResult> {
    const stats = { wallMs: 0, peakPages: 0 };
    if (this.state !== 'ready') return { ok: false, reason: 'killed', exitCode: EXIT_CODE_ABORT, message: `the instance has ended (${this.ended ?? 'closed'})`, stats };
    const exportsMap = this.entry.exports as Map<string, CallableExport | string>;
    const target = exportsMap.get(fn);
    const bad = (message: string): CallResult => ({ ok: false, reason: 'load', exitCode: EXIT_CODE_LOAD, message: `bad call: ${message}`, stats });
    if (target === undefined) return bad(`no exported function "${fn}"`);
    if (typeof target === 'string') return bad(target);
    const encoded = encodeArgs(target, args);
    if (typeof encoded === 'string') return bad(encoded);
    const base = this.request.limits;
    const merged: RunLimits = {
      ...(base ?? {}),
      ...(limits?.timeMs !== undefined ? { timeMs: limits.timeMs } : {}),
      ...(limits?.gas !== undefined ? { gas: limits.gas } : {}),
    };
    let out: { run: RunResult; stdout: Uint8Array };
    try {
      out = await this.engine.call(this.entry, this.request, this.events, target, encoded, merged);
    } catch (err) {
      return bad(err instanceof Error ? err.message : String(err));
    }
    const { run } = out;
    if (run.reason !== 'exit' || run.exitCode !== 0) {
      if (run.reason !== 'load') {
        this.state = 'ended';
        this.ended = `${run.reason}${run.message !== undefined ? `: ${run.message}` : ''}`;
      }
      return { ok: false, reason: run.reason, exitCode: run.exitCode, ...(run.message !== undefined ? { message: run.message } : {}), stats: run.stats };
    }
    // The results are the last lines of stdout; anything before them is the function's own output.
    const text = Buffer.from(out.stdout).toString('utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const n = target.resultTypes.length;
    const own = lines.slice(0, lines.length - n);
    if (own.length > 0) this.events.onStdout(new TextEncoder().encode(`${own.join('\n')}\n`));
    const printed = lines.slice(lines.length - n);
    const results: WasmValue[] = [];
    for (let i = 0; i < n; i++) {
      const v = parseCliValue(target.resultTypes[i] as 'i32', printed[i] ?? '');
      if (v === undefined) return { ok: false, reason: 'trap', exitCode: EXIT_CODE_ABORT, message: `cannot parse result ${i + 1} of ${fn} from wasmedge output: ${JSON.stringify(printed[i] ?? '')}`, stats: run.stats };
      results.push(v);
    }
    return { ok: true, results, stats: run.stats };
  }

  async close(): Promise<void> {
    this.state = 'ended';
    this.ended = 'closed';
  }
}
