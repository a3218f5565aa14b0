/**
 * A reactor instance of the V8 engine, runner side. It owns one worker for its whole life (a time limit can only
 * be enforced by terminating the thread, which must not take other instances with it). Calls go through the
 * worker's call queue (call-queue.ts): `call()` validates the arguments against the export's signature, writes a
 * record and returns a promise; results are harvested in batches when the worker signals (Atomics.waitAsync)
 * and whenever another call is made. Results come back in request order, so pending calls are a FIFO.
 */
import { performance } from 'node:perf_hooks';

import {
  CTL,
  CURRENT_START_F64,
  ERROR_REASONS,
  FLAG_GAS,
  FLAG_TIMED,
  header,
  headerKind,
  headerWords,
  INIT_SEQ,
  nowMs,
  REQ_CALL,
  RES_OK,
  VT_F32,
  VT_F64,
  VT_I32,
  VT_I64,
} from './call-queue.js';
import { GAS_UNLIMITED } from './gas.js';
import {
  type CallResult,
  EXIT_CODE_ABORT,
  EXIT_CODE_LOAD,
  type ExitReason,
  type ReactorCall,
  type ReactorInstance,
  type RunEvents,
  type RunLimits,
  type RunStats,
  type WasmValue,
} from './types.js';
import type { WorkerHandle, WorkerOwner } from './v8-handle.js';
import { formatSignature, type FunctionSignature, type ValueType } from './wasm-binary.js';
import type { ExportSpec, Outcome, WorkerMessage } from './worker-protocol.js';

const PAGE = 65536;

/** Atomics.waitAsync (V8 ≥ 8.7, Node ≥ 16) is in ES2024's lib, which this project does not compile against. */
type WaitAsyncResult = { readonly async: false; readonly value: 'not-equal' | 'timed-out' } | { readonly async: true; readonly value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number): WaitAsyncResult }).waitAsync;
const VT: Readonly<Record<string, number>> = { i32: VT_I32, i64: VT_I64, f32: VT_F32, f64: VT_F64 };
const I64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;
/** An instrumented instance called without a budget still counts, from 2^63-1. */
const NO_BUDGET = GAS_UNLIMITED;

/** Callable exports of a module: those whose parameter and result types all cross the JS boundary. */
export interface CallableExport {
  readonly index: number;
  readonly name: string;
  readonly sig: FunctionSignature;
  readonly params: readonly number[];
  readonly results: readonly number[];
  readonly resultTypes: readonly ('i32' | 'i64' | 'f32' | 'f64')[];
}

export function callableExports(exports: ReadonlyMap<string, FunctionSignature>): { specs: ExportSpec[]; byName: Map<string, CallableExport | string> } {
  const specs: ExportSpec[] = [];
  const byName = new Map<string, CallableExport | string>();
  const numeric = (t: ValueType): boolean => VT[t] !== undefined;
  for (const [name, sig] of exports) {
    if (!sig.params.every(numeric) || !sig.results.every(numeric)) {
      byName.set(name, `${formatSignature(name, sig)} has v128 or reference types, which cannot be passed in a call`);
      continue;
    }
    const params = sig.params.map((t) => VT[t] as number);
    const results = sig.results.map((t) => VT[t] as number);
    byName.set(name, {
      index: specs.length,
      name,
      sig,
      params,
      results,
      resultTypes: sig.results as ('i32' | 'i64' | 'f32' | 'f64')[],
    });
    specs.push({ name, params, results });
  }
  return { specs, byName };
}

/** Converts checked arguments to what the queue carries, or explains what is wrong. */
export function encodeArgs(fn: CallableExport, args: readonly WasmValue[]): (number | bigint)[] | string {
  const expected = fn.sig.params;
  if (!Array.isArray(args) || args.length !== expected.length) {
    return `${formatSignature(fn.name, fn.sig)} takes ${expected.length} argument${expected.length === 1 ? '' : 's'}, got ${Array.isArray(args) ? args.length : 'none'}`;
  }
  const out: (number | bigint)[] = new Array<number | bigint>(args.length);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as WasmValue | undefined;
    const type = expected[i] as ValueType;
    // Built only for an error: formatting the signature per argument was a visible cost on the call path.
    const where = (): string => `argument ${i + 1} of ${formatSignature(fn.name, fn.sig)}`;
    if (arg === null || typeof arg !== 'object' || arg.type !== type) {
      return `${where()} must be ${type}, got ${arg === null || typeof arg !== 'object' ? String(arg) : String((arg as { type?: unknown }).type)}`;
    }
    const v: unknown = arg.value;
    switch (type) {
      case 'i32':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x8000_0000 || v > 0xffff_ffff) return `${where()}: ${String(v)} is not a 32-bit integer`;
        out[i] = v | 0;
        break;
      case 'i64': {
        let big: bigint | undefined;
        if (typeof v === 'string' && /^-?\d+$/.test(v)) big = BigInt(v);
        else if (typeof v === 'number' && Number.isSafeInteger(v)) big = BigInt(v);
        else if (typeof v === 'bigint') big = v;
        if (big === undefined || big < I64_MIN || big > U64_MAX) return `${where()}: ${String(v)} is not a 64-bit integer (decimal string)`;
        out[i] = BigInt.asIntN(64, big);
        break;
      }
      case 'f32':
        if (typeof v !== 'number') return `${where()}: ${String(v)} is not a number`;
        out[i] = Math.fround(v);
        break;
      default:
        if (typeof v !== 'number') return `${where()}: ${String(v)} is not a number`;
        out[i] = v;
    }
  }
  return out;
}

interface Pending {
  seq: number;
  fn: CallableExport;
  args: (number | bigint)[];
  budget: bigint | undefined;
  timeMs: number;
  startedAt: number;
  /** Receives the result; `index` is the call's place in its callMany batch (0 for call()). */
  done: (index: number, result: CallResult) => void;
  index: number;
}

/** What an instance needs from the engine. */
export interface ReactorHost {
  readonly endingGraceMs: number;
  destroy(handle: WorkerHandle): Promise<void>;
  forgetReactor(reactor: V8Reactor): void;
  warnListener(err: unknown): void;
}

export interface ReactorSettings {
  readonly exports: ReadonlyMap<string, CallableExport | string>;
  readonly instrumented: boolean;
  readonly limits: RunLimits | undefined;
}

type ReactorState = 'instantiating' | 'ready' | 'ended';

export class V8Reactor implements ReactorInstance, WorkerOwner {
  start: 'cold' | 'warm' | undefined;
  startMs: number | undefined;
  /** Instructions `_initialize` used (gas on). */
  initInstructions: number | undefined;
  readonly ready: Promise<void>;
  private settle!: { resolve: () => void; reject: (outcome: Outcome) => void };
  private state: ReactorState = 'instantiating';
  private ended: Outcome | undefined;
  private readonly pending: Pending[] = [];
  private head = 0;
  private readonly backlog: Pending[] = [];
  private seq = 0;
  private pages = 0;
  private armed = false;
  private watchdog: NodeJS.Timeout | undefined;
  private endingTimer: NodeJS.Timeout | undefined;
  private workerError: Error | undefined;
  private readonly onSignal = (): void => {
    this.armed = false;
    this.harvest();
    this.arm();
  };

  constructor(
    private readonly host: ReactorHost,
    readonly handle: WorkerHandle,
    private readonly settings: ReactorSettings,
    private readonly events: RunEvents,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Rejections are delivered through the engine's instantiate(); this keeps an early one from being unhandled.
    this.ready.catch(() => {});
  }

  get alive(): boolean {
    return this.state === 'ready';
  }

  memoryBytes(): number {
    return this.pages * PAGE;
  }

  call(fn: string, args: readonly WasmValue[], limits?: Pick<RunLimits, 'timeMs' | 'gas'>): Promise<CallResult> {
    return new Promise<CallResult>((resolve) => {
      const wrote = this.enqueue(fn, args, limits, (_, r) => resolve(r), 0);
      this.submitted(wrote);
    });
  }

  /**
   * Many calls with one hand-off to the worker: every record is written, then the queue is committed once (one
   * wake-up of a sleeping worker for the lot). `done` may run before this returns (a call that cannot be made)
   * and must not call back into this instance synchronously (it may run inside a harvest).
   */
  callMany(calls: readonly ReactorCall[], done: (index: number, result: CallResult) => void): void {
    let wrote = false;
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i] as ReactorCall;
      if (this.enqueue(c.fn, c.args, c.limits, done, i)) wrote = true;
    }
    this.submitted(wrote);
  }

  /** Checks one call and writes its record (or backlogs it); answers at once when it cannot be made. */
  private enqueue(fn: string, args: readonly WasmValue[], limits: Pick<RunLimits, 'timeMs' | 'gas'> | undefined, done: Pending['done'], index: number): boolean {
    if (this.state !== 'ready') {
      done(index, this.deadResult(0));
      return false;
    }
    const target = this.settings.exports.get(fn);
    if (target === undefined) {
      done(index, this.badCall(`no exported function "${fn}"; callable: ${this.listing()}`));
      return false;
    }
    if (typeof target === 'string') {
      done(index, this.badCall(target));
      return false;
    }
    const encoded = encodeArgs(target, args);
    if (typeof encoded === 'string') {
      done(index, this.badCall(encoded));
      return false;
    }
    const gas = limits?.gas ?? this.settings.limits?.gas;
    let budget: bigint | undefined;
    if (this.settings.instrumented) budget = gas !== undefined && gas > 0 && gas < Number(NO_BUDGET) ? BigInt(Math.floor(gas)) : NO_BUDGET;
    else if (gas !== undefined && gas > 0) {
      done(index, this.badCall(`a gas limit needs an instance created with limits.gas (this one counts nothing); call ${fn} without gas or re-instantiate`));
      return false;
    }
    const timeMs = limits?.timeMs ?? this.settings.limits?.timeMs ?? 0;
    // Seqs stay positive: INIT_SEQ (-1) marks `_initialize` in the queue header.
    this.seq = this.seq >= 0x7fff_ffff ? 1 : this.seq + 1;
    const p: Pending = { seq: this.seq, fn: target, args: encoded, budget, timeMs: timeMs > 0 ? timeMs : 0, startedAt: performance.now(), done, index };
    // Keeps the process alive while a call is out (Atomics.waitAsync alone does not).
    if (this.inFlight() === 0) this.handle.ref();
    let wrote = false;
    if (this.backlog.length === 0 && this.write(p)) wrote = true;
    else this.backlog.push(p);
    if (p.timeMs > 0) this.watch(p.timeMs);
    return wrote;
  }

  /** After records were written: publish them to the worker and make sure their results will be harvested. */
  private submitted(wrote: boolean): void {
    if (wrote) this.handle.commit();
    this.arm();
  }

  async close(): Promise<void> {
    if (this.state === 'ended') return;
    this.end({ reason: 'killed', exitCode: EXIT_CODE_ABORT, message: 'the instance was closed' }, false);
    await this.host.destroy(this.handle);
  }

  // ---- worker events --------------------------------------------------------------------------------------

  onMessage(msg: WorkerMessage): void {
    switch (msg.type) {
      case 'instantiated':
        if (this.state !== 'instantiating') return;
        clearTimeout(this.watchdog);
        this.watchdog = undefined;
        this.state = 'ready';
        this.start = msg.start;
        this.startMs = msg.startMs;
        this.pages = msg.peakPages;
        this.initInstructions = msg.instructions;
        this.settle.resolve();
        return;
      case 'failed':
        this.drain();
        this.fail(msg.outcome);
        return;
      case 'doorbell':
        this.drain();
        return;
      case 'ending': {
        // proc_exit or the output limit inside a call: the call's own result normally ends the instance first;
        // this only fires if the module swallowed the sentinel and kept running.
        const outcome = msg.outcome;
        this.endingTimer ??= setTimeout(() => this.end(outcome, true), this.host.endingGraceMs);
        return;
      }
      default:
        return;
    }
  }

  onError(err: Error): void {
    this.workerError = err;
  }

  onExit(code: number): void {
    this.drain();
    const err = this.workerError;
    const outOfMemory = (err as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
    const outcome: Outcome = {
      reason: outOfMemory ? 'memory' : 'trap',
      exitCode: EXIT_CODE_ABORT,
      message: err !== undefined ? `engine worker failed: ${err.message}` : `engine worker exited with code ${code}`,
    };
    if (this.state === 'instantiating') this.fail(outcome);
    else this.end(outcome, false);
  }

  /**
   * Enforces a time limit on `_initialize`, counted from when the worker starts it (it stamps INIT_SEQ and the
   * time in the queue header); a worker still being spawned does not count.
   */
  limitInitialize(timeMs: number): void {
    const check = (): void => {
      if (this.state !== 'instantiating') return;
      const ctl = this.handle.queue.ctl;
      let wait = timeMs;
      if (Atomics.load(ctl, CTL.CURRENT) === INIT_SEQ) {
        const elapsed = nowMs() - (this.handle.queue.ctlF64[CURRENT_START_F64] as number);
        if (elapsed >= timeMs) {
          this.fail({ reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `_initialize exceeded the time limit of ${timeMs} ms` });
          return;
        }
        wait = timeMs - elapsed;
      }
      this.watchdog = setTimeout(check, Math.max(1, wait));
    };
    this.watchdog = setTimeout(check, timeMs);
  }

  /** Ends a pending instantiation; the engine turns this into AGT_ERR_RUN_LOAD. */
  fail(outcome: Outcome): void {
    if (this.state !== 'instantiating') return;
    clearTimeout(this.watchdog);
    this.state = 'ended';
    this.ended = outcome;
    this.settle.reject(outcome);
    this.host.forgetReactor(this);
    void this.host.destroy(this.handle);
  }

  // ---- the queue ------------------------------------------------------------------------------------------

  private inFlight(): number {
    return this.pending.length - this.head + this.backlog.length;
  }

  /** Writes one call record if it fits. */
  private write(p: Pending): boolean {
    const params = p.fn.params;
    const payload = 1 + (p.budget !== undefined ? 1 : 0) + params.length;
    const h = this.handle;
    if (h.space() < payload + 1) return false;
    const req = h.queue.req;
    const start = h.reqWrite;
    let w = start + 1;
    req.setPair(w++, p.fn.index, (p.timeMs > 0 ? FLAG_TIMED : 0) | (p.budget !== undefined ? FLAG_GAS : 0));
    if (p.budget !== undefined) req.setI64(w++, p.budget);
    const args = p.args;
    for (let i = 0; i < params.length; i++, w++) {
      const t = params[i];
      if (t === VT_I32) req.setPair(w, args[i] as number, 0);
      else if (t === VT_I64) req.setI64(w, args[i] as bigint);
      else req.setF64(w, args[i] as number);
    }
    req.setPair(start, header(REQ_CALL, payload), p.seq);
    h.reqWrite = (start + 1 + payload) | 0;
    this.pending.push(p);
    return true;
  }

  private flushBacklog(): void {
    if (this.backlog.length === 0) return;
    let n = 0;
    while (n < this.backlog.length && this.write(this.backlog[n] as Pending)) n++;
    if (n > 0) {
      this.backlog.splice(0, n);
      this.handle.commit();
    }
  }

  /** Waits for the worker's next signal, unless results are already there. */
  private arm(): void {
    if (this.armed || this.state !== 'ready' || this.inFlight() === 0) return;
    const ctl = this.handle.queue.ctl;
    const seen = Atomics.load(ctl, CTL.SIGNAL);
    // Read after `seen`: anything published later changes SIGNAL, so waitAsync below cannot miss it.
    this.harvest();
    if (this.state !== 'ready' || this.inFlight() === 0) return;
    this.armed = true;
    const waited = waitAsync(ctl, CTL.SIGNAL, seen);
    if (waited.async) void waited.value.then(this.onSignal);
    else queueMicrotask(this.onSignal);
  }

  /** Resolves every call whose result the worker has published. */
  private harvest(): void {
    const h = this.handle;
    const ctl = h.queue.ctl;
    const res = h.queue.res;
    const write = Atomics.load(ctl, CTL.RES_WRITE);
    let read = h.resRead;
    if (read === write) return;
    const now = performance.now();
    while (read !== write && this.state === 'ready') {
      const lo = res.lo(read);
      const words = headerWords(lo);
      const p = this.pending[this.head] as Pending;
      this.pending[this.head++] = undefined as unknown as Pending;
      const at = read + 1;
      read = (read + 1 + words) | 0;
      if (headerKind(lo) === RES_OK) {
        p.done(p.index, this.okResult(p, at, now));
      } else {
        h.resRead = read;
        Atomics.store(ctl, CTL.RES_READ, read);
        this.errorResult(p, at, now);
        return;
      }
    }
    h.resRead = read;
    Atomics.store(ctl, CTL.RES_READ, read);
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
    this.flushBacklog();
    if (this.inFlight() === 0) {
      this.pending.length = 0;
      this.head = 0;
      this.handle.unref();
    }
  }

  private okResult(p: Pending, at: number, now: number): CallResult {
    const res = this.handle.queue.res;
    this.pages = res.lo(at);
    let pos = at + 1;
    let instructions: number | undefined;
    if ((res.hi(at) & FLAG_GAS) !== 0) instructions = Number(res.getI64(pos++));
    const types = p.fn.resultTypes;
    const results: WasmValue[] = new Array<WasmValue>(types.length);
    for (let i = 0; i < types.length; i++, pos++) {
      const type = types[i];
      if (type === 'i32') results[i] = { type, value: res.lo(pos) };
      else if (type === 'i64') results[i] = { type, value: res.getI64(pos).toString() };
      else results[i] = { type: type as 'f32' | 'f64', value: res.getF64(pos) };
    }
    const stats: RunStats =
      instructions === undefined
        ? { wallMs: now - p.startedAt, peakPages: this.pages }
        : { wallMs: now - p.startedAt, peakPages: this.pages, instructions };
    return { ok: true, results, stats };
  }

  /** An ERROR record: the call ended the instance (trap, gas, exit, output limit). */
  private errorResult(p: Pending, at: number, now: number): void {
    const res = this.handle.queue.res;
    this.pages = res.lo(at);
    const reason: ExitReason = ERROR_REASONS[res.lo(at + 1)] ?? 'trap';
    const exitCode = res.hi(at + 1);
    const count = res.getI64(at + 2);
    const length = res.lo(at + 3);
    const message = new TextDecoder().decode(res.readBytes(at + 4, length));
    const stats: RunStats = {
      wallMs: now - p.startedAt,
      peakPages: this.pages,
      ...(count >= 0n && (res.hi(at) & FLAG_GAS) !== 0 ? { instructions: Number(count) } : {}),
    };
    p.done(p.index, { ok: false, reason, exitCode, ...(message !== '' ? { message } : {}), stats });
    this.end({ reason, exitCode, message }, true);
  }

  /**
   * Ends the instance: every call still pending resolves as `killed` (or with `outcome` for the one running
   * when a limit hit), and the worker is terminated — its state may be mid-call, so it is never reused.
   */
  private end(outcome: Outcome, destroy: boolean, running?: Pending): void {
    if (this.state === 'ended') return;
    const wasInstantiating = this.state === 'instantiating';
    this.state = 'ended';
    this.ended = outcome;
    clearTimeout(this.watchdog);
    clearTimeout(this.endingTimer);
    if (wasInstantiating) this.settle.reject(outcome);
    const now = performance.now();
    const all = [...this.pending.slice(this.head), ...this.backlog];
    this.pending.length = 0;
    this.head = 0;
    this.backlog.length = 0;
    for (const p of all) {
      const stats: RunStats = { wallMs: now - p.startedAt, peakPages: this.pages };
      if (p === running) p.done(p.index, { ok: false, reason: outcome.reason, exitCode: outcome.exitCode, ...(outcome.message !== undefined ? { message: outcome.message } : {}), stats });
      else p.done(p.index, this.deadResult(now - p.startedAt));
    }
    this.handle.resetRefs();
    this.host.forgetReactor(this);
    if (destroy) void this.host.destroy(this.handle);
  }

  private deadResult(wallMs: number): CallResult {
    const cause = this.ended;
    const why = cause === undefined ? 'the instance is not ready' : `the instance has ended (${cause.reason}${cause.message !== undefined ? `: ${cause.message}` : ''})`;
    return { ok: false, reason: 'killed', exitCode: EXIT_CODE_ABORT, message: why, stats: { wallMs, peakPages: this.pages } };
  }

  private badCall(message: string): CallResult {
    return { ok: false, reason: 'load', exitCode: EXIT_CODE_LOAD, message: `bad call: ${message}`, stats: { wallMs: 0, peakPages: this.pages } };
  }

  private listing(): string {
    const names = [...this.settings.exports.entries()]
      .filter((e): e is [string, CallableExport] => typeof e[1] !== 'string')
      .map(([, f]) => formatSignature(f.name, f.sig));
    return names.length === 0 ? '(none)' : names.join(', ');
  }

  // ---- time limits ----------------------------------------------------------------------------------------

  /**
   * A call's time limit counts from when the worker starts it (it may wait behind others in the queue). The
   * watchdog looks at the oldest pending call: the worker stamps CURRENT and its start time for timed calls.
   */
  private watch(delayMs: number): void {
    if (this.watchdog !== undefined) return;
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      this.check();
    }, Math.max(1, delayMs));
    // Calls in flight keep the process alive through the worker's ref; a leftover check must not.
    this.watchdog.unref();
  }

  private check(): void {
    this.harvest();
    if (this.state !== 'ready') return;
    let nextMs = Infinity;
    for (let i = this.head; i < this.pending.length; i++) {
      const p = this.pending[i] as Pending;
      if (p.timeMs > 0) nextMs = Math.min(nextMs, p.timeMs);
    }
    for (const p of this.backlog) if (p.timeMs > 0) nextMs = Math.min(nextMs, p.timeMs);
    const oldest = this.pending[this.head];
    if (oldest !== undefined && oldest.timeMs > 0) {
      const ctl = this.handle.queue.ctl;
      if (Atomics.load(ctl, CTL.CURRENT) === oldest.seq) {
        const elapsed = nowMs() - (this.handle.queue.ctlF64[CURRENT_START_F64] as number);
        if (elapsed >= oldest.timeMs) {
          this.drain();
          this.end({ reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `time limit of ${oldest.timeMs} ms exceeded in ${oldest.fn.name}` }, true, oldest);
          return;
        }
        nextMs = Math.min(nextMs, oldest.timeMs - elapsed);
      }
    }
    if (nextMs !== Infinity) this.watch(nextMs);
  }

  private drain(): void {
    this.handle.ring.drain((fd, chunk) => {
      try {
        if (fd === 2) this.events.onStderr(chunk);
        else this.events.onStdout(chunk);
      } catch (err) {
        this.host.warnListener(err);
      }
    });
  }
}
