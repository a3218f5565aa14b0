/**
 * Worker-thread side of the V8 engine. The worker never returns to its event loop: it sits in `serve()`, taking
 * records from the call queue (call-queue.ts), and blocks in Atomics.wait when there is nothing to do. That is
 * what makes a reactor call cost about a microsecond instead of a postMessage round trip; control payloads
 * (run, instantiate, load) still use structured clone, pulled synchronously with receiveMessageOnPort.
 *
 * A worker runs one thing at a time: a command's `_start`, or one reactor's calls. Between requests it fills its
 * warm pool: instances created ahead (host not yet configured) so a run only has to set argv/env and call
 * `_start`. Running in a worker is what lets the runner end a spin loop (`worker.terminate()` interrupts wasm,
 * and Atomics.wait too) while its own event loop stays free. Everything a run creates is local to it, which is
 * what makes it safe to hand the worker another run after this one ended by itself.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';

import {
  type WasiEnding,
  WasiExit,
  WasiHost,
  WasiOutputLimit,
  type WasmGlobal,
  type WasmInstance,
  type WasmMemory,
  type WasmModule,
  wasmApi,
} from '../wasi/index.js';
import {
  CTL,
  CURRENT_START_F64,
  ERROR_REASONS,
  type ErrorReason,
  FLAG_GAS,
  FLAG_TIMED,
  header,
  headerKind,
  headerWords,
  INIT_SEQ,
  nowMs,
  PUBLISH_EVERY,
  QueueView,
  REQ_CALL,
  RES_ERROR,
  RES_OK,
  RUN_BEGUN_F64,
  RUN_START_MS_F64,
  VT_I32,
  VT_I64,
} from './call-queue.js';
import { GAS_LEFT_EXPORT, GAS_OUT_EXPORT, GAS_UNLIMITED } from './gas.js';
import { RingWriter } from './output-ring.js';
import { EXIT_CODE_ABORT, EXIT_CODE_LOAD } from './types.js';
import type { ControlMessage, ExportSpec, Outcome, RunSpec, WorkerData, WorkerMessage } from './worker-protocol.js';

const PAGE = 65536;

if (parentPort === null) throw new Error('v8-worker must run as a worker thread');
const parent = parentPort;
const data = workerData as WorkerData;
const post = (message: WorkerMessage): void => parent.postMessage(message);
// The doorbell is an Atomics.notify the runner waits on (output-ring.ts), not a message.
const ring = new RingWriter(data.ring);
const q = new QueueView(data.queue);
const ctl = q.ctl;
const Wasm = wasmApi();

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function endingOutcome(ending: WasiEnding): Outcome {
  if (ending instanceof WasiExit) {
    // The WASI code is 32 bits; like `wasmedge run`, what a process can report is its low 8 bits.
    const exitCode = ending.code & 0xff;
    return exitCode === ending.code
      ? { reason: 'exit', exitCode }
      : { reason: 'exit', exitCode, message: `proc_exit(${ending.code})` };
  }
  return { reason: 'output', exitCode: EXIT_CODE_ABORT, message: `output exceeded the limit of ${ending.limit} bytes` };
}

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack size/i.test(err.message);
}

function load(message: string): Outcome {
  return { reason: 'load', exitCode: EXIT_CODE_LOAD, message };
}

interface Prepared {
  readonly instance: WasmInstance;
  readonly host: WasiHost;
  readonly memory: WasmMemory | undefined;
  readonly gasLeft: WasmGlobal | undefined;
  readonly gasOut: WasmGlobal | undefined;
}

function pagesOf(memory: WasmMemory | undefined): number {
  return memory === undefined ? 0 : Math.floor(memory.buffer.byteLength / PAGE);
}

/** Everything thrown out of wasm that is not one of our sentinels ends the instance as a trap (or gas). */
function failureOutcome(err: unknown, p: Prepared, budget: bigint | undefined): Outcome {
  if (err instanceof WasiExit || err instanceof WasiOutputLimit) return endingOutcome(err);
  // If the module caught our sentinel (exception handling) and went on, the ending still decides.
  const ending = p.host.ended;
  if (ending !== undefined) return endingOutcome(ending);
  if (err instanceof Wasm.RuntimeError && p.gasOut !== undefined && p.gasOut.value === 1) {
    return { reason: 'gas', exitCode: EXIT_CODE_ABORT, message: `gas limit of ${String(budget ?? 0n)} instructions exhausted` };
  }
  if (err instanceof Wasm.RuntimeError || isStackOverflow(err)) return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: describe(err) };
  if (err instanceof Error) return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: `host error: ${err.message}` };
  return { reason: 'trap', exitCode: EXIT_CODE_ABORT, message: 'uncaught WebAssembly exception' };
}

/**
 * Instantiates with a host bound to this worker's output ring. With `run` the host is configured before
 * instantiation (a wasm start function then sees the real argv); without, it is configured later (warm pool).
 */
function prepare(module: WasmModule, run: RunSpec | undefined): Prepared | Outcome {
  let memory: WasmMemory | undefined;
  let host: WasiHost;
  try {
    host = new WasiHost({
      args: run?.args ?? [],
      env: run?.env ?? {},
      preopens: run?.preopens,
      stdin: run?.stdin,
      outputLimit: run?.outputBytes,
      output: (fd, chunk) => ring.write(fd, chunk),
      onCall: () => ring.setPages(pagesOf(memory)),
      onEnd: (ending) => post({ type: 'ending', outcome: endingOutcome(ending) }),
    });
  } catch (err) {
    return load(`cannot set up WASI: ${describe(err)}`);
  }
  let instance: WasmInstance;
  try {
    instance = new Wasm.Instance(module, { wasi_snapshot_preview1: host.wasiImport });
  } catch (err) {
    // A start function may legitimately call proc_exit; anything else failing here is a load failure.
    const ending = host.ended;
    host.close();
    if (ending !== undefined) return endingOutcome(ending);
    return load(`instantiation failed: ${describe(err)}`);
  }
  const exported = instance.exports.memory;
  if (exported instanceof Wasm.Memory) memory = exported;
  host.initialize(instance);
  const left = instance.exports[GAS_LEFT_EXPORT];
  const out = instance.exports[GAS_OUT_EXPORT];
  return {
    instance,
    host,
    memory,
    gasLeft: left instanceof Wasm.Global ? left : undefined,
    gasOut: out instanceof Wasm.Global ? out : undefined,
  };
}

function isPrepared(p: Prepared | Outcome): p is Prepared {
  return (p as Prepared).instance !== undefined;
}

function configure(p: Prepared, run: RunSpec): Outcome | undefined {
  try {
    p.host.configure({ args: run.args, env: run.env, preopens: run.preopens, stdin: run.stdin, outputLimit: run.outputBytes });
    return undefined;
  } catch (err) {
    return load(`cannot set up WASI: ${describe(err)}`);
  }
}

function setBudget(p: Prepared, gas: number | undefined): bigint | undefined {
  if (p.gasLeft === undefined || p.gasOut === undefined) return undefined;
  // Without a budget the counter starts at 2^63-1, which cannot run out in practice.
  const budget = gas === undefined ? GAS_UNLIMITED : gasBudget(gas);
  p.gasLeft.value = budget;
  p.gasOut.value = 0;
  return gas === undefined ? undefined : budget;
}

function gasBudget(gas: number): bigint {
  const b = BigInt(Math.floor(gas));
  return b > GAS_UNLIMITED ? GAS_UNLIMITED : b;
}

function used(p: Prepared, budget: bigint | undefined): number | undefined {
  if (budget === undefined || p.gasLeft === undefined) return undefined;
  return Number(budget - (p.gasLeft.value as bigint));
}

// ---- warm pool ---------------------------------------------------------------------------------------------

interface Loaded {
  readonly module: WasmModule;
  readonly keep: number;
  readonly ready: Prepared[];
  failed: boolean;
}

const loaded = new Map<string, Loaded>();

/** Takes a warm instance. Not reported: the runner counted it down when it dispatched (a message costs time). */
function takeReady(key: string): Prepared | undefined {
  return loaded.get(key)?.ready.pop();
}

/** Creates one missing warm instance; returns false when every pool is full. */
function refill(): boolean {
  for (const [key, entry] of loaded) {
    if (entry.failed || entry.ready.length >= entry.keep) continue;
    const p = prepare(entry.module, undefined);
    if (isPrepared(p)) {
      entry.ready.push(p);
      post({ type: 'ready', key, count: entry.ready.length });
    } else {
      entry.failed = true;
      post({ type: 'load-failed', key, message: p.message ?? p.reason });
    }
    return true;
  }
  return false;
}

function dropLoaded(key: string): void {
  const entry = loaded.get(key);
  if (entry === undefined) return;
  for (const p of entry.ready) p.host.close();
  loaded.delete(key);
}

// ---- commands ----------------------------------------------------------------------------------------------

function runCommand(msg: Extract<ControlMessage, { type: 'run' }>): void {
  // The time limit counts from here (instantiation included), not from the dispatch: a cold worker may still
  // have been booting then. Shared memory rather than a message, which would cost the warm path ~0.1 ms.
  q.ctlF64[RUN_BEGUN_F64] = nowMs();
  Atomics.store(ctl, CTL.RUN_BEGUN, 1);
  const module = msg.module ?? loaded.get(msg.key)?.module;
  const done = (outcome: Outcome, peakPages: number, start: 'cold' | 'warm', startMs: number, instructions?: number): void => {
    ring.setPages(peakPages);
    post({ type: 'done', outcome, peakPages, start, startMs, ...(instructions !== undefined ? { instructions } : {}) });
  };
  if (module === undefined) return done(load(`module ${msg.key} is not loaded in this worker`), 0, 'cold', nowMs() - msg.requestedAt);
  let p: Prepared | Outcome | undefined = takeReady(msg.key);
  const start = p === undefined ? 'cold' : 'warm';
  if (p === undefined) p = prepare(module, msg.run);
  else {
    const failed = configure(p, msg.run);
    if (failed !== undefined) return done(failed, 0, start, nowMs() - msg.requestedAt);
  }
  if (!isPrepared(p)) return done(p, 0, start, nowMs() - msg.requestedAt);
  const prepared = p;
  try {
    ring.setPages(pagesOf(prepared.memory));
    const entry = prepared.instance.exports._start;
    if (typeof entry !== 'function') return done(load('the module exports no _start function'), pagesOf(prepared.memory), start, nowMs() - msg.requestedAt);
    const budget = setBudget(prepared, msg.gas);
    const startMs = nowMs() - msg.requestedAt;
    // Also in shared memory: a run stopped from outside (timeout, kill) never sends `done`.
    q.ctlF64[RUN_START_MS_F64] = startMs;
    Atomics.store(ctl, CTL.RUN_START, start === 'warm' ? 1 : 2);
    let outcome: Outcome = { reason: 'exit', exitCode: 0 };
    try {
      (entry as () => unknown)();
    } catch (err) {
      outcome = failureOutcome(err, prepared, budget);
    }
    const ending = prepared.host.ended;
    if (ending !== undefined) outcome = endingOutcome(ending);
    done(outcome, pagesOf(prepared.memory), start, startMs, used(prepared, budget));
  } finally {
    prepared.host.close();
  }
}

// ---- reactors ----------------------------------------------------------------------------------------------

interface Reactor {
  readonly p: Prepared;
  readonly fns: ((...args: unknown[]) => unknown)[];
  readonly specs: readonly ExportSpec[];
  /** Set once a call ended the instance: later calls are answered `killed`. */
  ended: Outcome | undefined;
}

let reactor: Reactor | undefined;

function instantiate(msg: Extract<ControlMessage, { type: 'instantiate' }>): void {
  const module = msg.module ?? loaded.get(msg.key)?.module;
  if (module === undefined) return post({ type: 'failed', outcome: load(`module ${msg.key} is not loaded in this worker`) });
  let p: Prepared | Outcome | undefined = takeReady(msg.key);
  const start = p === undefined ? 'cold' : 'warm';
  // The worker now belongs to this instance: its warm pool would only hold memory.
  for (const key of [...loaded.keys()]) dropLoaded(key);
  if (p === undefined) p = prepare(module, msg.run);
  else {
    const failed = configure(p, msg.run);
    if (failed !== undefined) return post({ type: 'failed', outcome: failed });
  }
  if (!isPrepared(p)) return post({ type: 'failed', outcome: p });
  const prepared = p;
  const fns: ((...args: unknown[]) => unknown)[] = [];
  for (const spec of msg.exports) {
    const fn = prepared.instance.exports[spec.name];
    if (typeof fn !== 'function') return post({ type: 'failed', outcome: load(`export ${spec.name} is not a function`) });
    fns.push(fn as (...args: unknown[]) => unknown);
  }
  const budget = setBudget(prepared, msg.gas);
  const startMs = nowMs() - msg.requestedAt;
  const init = prepared.instance.exports._initialize;
  if (typeof init === 'function') {
    // Lets the runner time `_initialize` from its real start (a cold worker may have taken a while to get here).
    q.ctlF64[CURRENT_START_F64] = nowMs();
    Atomics.store(ctl, CTL.CURRENT, INIT_SEQ);
    try {
      (init as () => unknown)();
    } catch (err) {
      prepared.host.close();
      return post({ type: 'failed', outcome: failureOutcome(err, prepared, budget) });
    }
  }
  const instructions = used(prepared, budget);
  reactor = { p: prepared, fns, specs: msg.exports, ended: undefined };
  post({ type: 'instantiated', start, startMs, peakPages: pagesOf(prepared.memory), ...(instructions !== undefined ? { instructions } : {}) });
}

// ---- the queue ---------------------------------------------------------------------------------------------

let reqRead = Atomics.load(ctl, CTL.REQ_READ);
let resWrite = Atomics.load(ctl, CTL.RES_WRITE);
let unpublished = 0;
const encoder = new TextEncoder();

function publish(): void {
  Atomics.store(ctl, CTL.RES_WRITE, resWrite);
  Atomics.add(ctl, CTL.SIGNAL, 1);
  Atomics.notify(ctl, CTL.SIGNAL);
  unpublished = 0;
}

/** Waits (publishing, so the runner drains) until `words` fit in the result ring. */
function reserve(words: number): void {
  while (((resWrite - Atomics.load(ctl, CTL.RES_READ)) | 0) + words > q.res.size) {
    publish();
    Atomics.wait(ctl, CTL.RES_READ, Atomics.load(ctl, CTL.RES_READ), 1);
  }
}

function writeError(seq: number, outcome: Outcome, pages: number, instructions: number | undefined): void {
  const message = encoder.encode(outcome.message ?? '');
  const messageWords = (message.length + 7) >>> 3;
  const payload = 4 + messageWords;
  reserve(1 + payload);
  const r = q.res;
  const at = resWrite + 1;
  r.setPair(at, pages, instructions !== undefined ? FLAG_GAS : 0);
  r.setPair(at + 1, ERROR_REASONS.indexOf(outcome.reason as ErrorReason), outcome.exitCode);
  r.setI64(at + 2, instructions !== undefined ? BigInt(instructions) : -1n);
  r.setPair(at + 3, message.length, 0);
  r.writeBytes(at + 4, message);
  r.setPair(resWrite, header(RES_ERROR, payload), seq);
  resWrite = (resWrite + 1 + payload) | 0;
  publish();
}

function invoke(fn: (...args: unknown[]) => unknown, args: unknown[]): unknown {
  // Fixed arities avoid the spread for the common shapes.
  switch (args.length) {
    case 0:
      return fn();
    case 1:
      return fn(args[0]);
    case 2:
      return fn(args[0], args[1]);
    case 3:
      return fn(args[0], args[1], args[2]);
    default:
      return fn(...args);
  }
}

function handleCall(seq: number, at: number): void {
  const r = reactor;
  if (r === undefined || r.ended !== undefined) {
    const cause = r?.ended;
    const message = cause === undefined ? 'no instance in this worker' : `the instance has ended (${cause.reason}${cause.message !== undefined ? `: ${cause.message}` : ''})`;
    writeError(seq, { reason: 'killed', exitCode: EXIT_CODE_ABORT, message }, 0, undefined);
    return;
  }
  const req = q.req;
  const index = req.lo(at);
  const flags = req.hi(at);
  let pos = at + 1;
  let budget: bigint | undefined;
  if ((flags & FLAG_GAS) !== 0) {
    budget = req.getI64(pos);
    pos++;
  }
  const spec = r.specs[index] as ExportSpec;
  const fn = r.fns[index] as (...args: unknown[]) => unknown;
  const params = spec.params;
  const args = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++, pos++) {
    const t = params[i];
    args[i] = t === VT_I32 ? req.lo(pos) : t === VT_I64 ? req.getI64(pos) : req.getF64(pos);
  }
  const p = r.p;
  if (budget !== undefined && p.gasLeft !== undefined && p.gasOut !== undefined) {
    p.gasLeft.value = budget;
    p.gasOut.value = 0;
  }
  if ((flags & FLAG_TIMED) !== 0) {
    q.ctlF64[CURRENT_START_F64] = nowMs();
    Atomics.store(ctl, CTL.CURRENT, seq);
  }
  let ret: unknown;
  try {
    ret = invoke(fn, args);
  } catch (err) {
    const outcome = failureOutcome(err, p, budget);
    r.ended = outcome;
    p.host.close();
    writeError(seq, outcome, pagesOf(p.memory), used(p, budget));
    return;
  }
  const results = spec.results;
  const payload = 1 + (budget !== undefined ? 1 : 0) + results.length;
  reserve(1 + payload);
  const res = q.res;
  let w = resWrite + 1;
  res.setPair(w++, pagesOf(p.memory), budget !== undefined ? FLAG_GAS : 0);
  if (budget !== undefined) res.setI64(w++, budget - (p.gasLeft?.value as bigint));
  if (results.length === 1) writeValue(w, results[0] as number, ret);
  else if (results.length > 1) {
    const list = ret as unknown[];
    for (let i = 0; i < results.length; i++) writeValue(w + i, results[i] as number, list[i]);
  }
  res.setPair(resWrite, header(RES_OK, payload), seq);
  resWrite = (resWrite + 1 + payload) | 0;
  if (++unpublished >= PUBLISH_EVERY) publish();
}

function writeValue(pos: number, type: number, value: unknown): void {
  if (type === VT_I32) q.res.setPair(pos, value as number, 0);
  else if (type === VT_I64) q.res.setI64(pos, value as bigint);
  else q.res.setF64(pos, value as number);
}

function handleControl(): void {
  const received = receiveMessageOnPort(data.port);
  if (received === undefined) return; // cannot happen: the runner posts before it enqueues the record
  const msg = received.message as ControlMessage;
  switch (msg.type) {
    case 'load':
      dropLoaded(msg.key);
      loaded.set(msg.key, { module: msg.module, keep: msg.keep, ready: [], failed: false });
      if (msg.keep === 0) post({ type: 'ready', key: msg.key, count: 0 });
      return;
    case 'unload':
      dropLoaded(msg.key);
      return;
    case 'run':
      runCommand(msg);
      return;
    case 'instantiate':
      instantiate(msg);
      return;
  }
}

function serve(): never {
  for (;;) {
    if (Atomics.load(ctl, CTL.REQ_WRITE) !== reqRead) {
      const lo = q.req.lo(reqRead);
      const seq = q.req.hi(reqRead);
      if (headerKind(lo) === REQ_CALL) handleCall(seq, reqRead + 1);
      else handleControl();
      reqRead = (reqRead + 1 + headerWords(lo)) | 0;
      Atomics.store(ctl, CTL.REQ_READ, reqRead);
      continue;
    }
    if (unpublished > 0) publish();
    if (refill()) continue;
    // Idle: poll a little (a pipelined caller's next request is usually microseconds away), then sleep.
    for (let spins = data.spin; spins > 0 && Atomics.load(ctl, CTL.REQ_WRITE) === reqRead; spins--);
    if (Atomics.load(ctl, CTL.REQ_WRITE) !== reqRead) continue;
    Atomics.store(ctl, CTL.SLEEPING, 1);
    Atomics.wait(ctl, CTL.REQ_WRITE, reqRead);
    Atomics.store(ctl, CTL.SLEEPING, 0);
  }
}

serve();
