import { allocBytes } from '../frame/bytes.js';

/**
 * The request/result queue between the runner and one engine worker: two rings of 8-byte words in a
 * SharedArrayBuffer. A postMessage round trip costs tens of microseconds; a call through these rings costs
 * about one microsecond on each side, and many calls can be in flight at once (the worker drains requests in a
 * loop and the runner harvests results in batches).
 *
 * - The runner writes requests, bumps REQ_WRITE and, only if the worker said it is going to sleep (SLEEPING),
 *   wakes it with Atomics.notify. The worker spins briefly before sleeping, so back-to-back calls never pay a
 *   futex wake.
 * - The worker writes results, publishes RES_WRITE and bumps SIGNAL + Atomics.notify when it runs out of work
 *   (and every PUBLISH_EVERY results while busy); the runner waits on SIGNAL with Atomics.waitAsync, so its event
 *   loop never blocks.
 * - Requests that are not calls (run a command, instantiate, load a module) are a CONTROL record: the payload is
 *   taken from the worker's MessagePort with receiveMessageOnPort, which keeps structured clone (modules,
 *   stdin bytes) without the worker ever returning to its event loop.
 *
 * Record layout (word = 8 bytes; counters count words and wrap through the ring by masking):
 *   header word: int32 lo = kind | payloadWords << 8, int32 hi = seq
 *   CALL payload:  [fnIndex, flags] [gas budget i64 if GAS] [one word per argument]
 *   OK payload:    [pages, flags] [instructions i64 if GAS] [one word per result]
 *   ERROR payload: [pages, flags] [reason, exitCode] [instructions i64, -1 = none] [message byte length, 0]
 *                  [message bytes, UTF-8, padded to words]
 * i32 values sit in the low int32 of their word, i64 as a BigInt64, f32/f64 as a Float64 (f32 widens exactly).
 */

export const CTL = {
  REQ_WRITE: 0,
  REQ_READ: 1,
  RES_WRITE: 2,
  RES_READ: 3,
  /** 1 while the worker is (about to be) blocked in Atomics.wait on REQ_WRITE. */
  SLEEPING: 4,
  /** Bumped by the worker when results are published; the runner waits on it. */
  SIGNAL: 5,
  /** seq of the timed call executing now (for the runner's time-limit watchdog). */
  CURRENT: 6,
  /** How the current command run started: 0 not yet, 1 warm, 2 cold (read even if the run is then killed). */
  RUN_START: 7,
  /** 1 once the worker has picked up the current command run (its time limit counts from then). */
  RUN_BEGUN: 8,
} as const;

/** Float64 index of the current command run's startMs. */
export const RUN_START_MS_F64 = 9;
/** Float64 index of when (nowMs) the worker picked up the current command run. */
export const RUN_BEGUN_F64 = 10;

/** CURRENT while `_initialize` runs (call seqs are 1..2^31-1). */
export const INIT_SEQ = -1;

/** Float64 index of the start time (ms, `nowMs()` clock) of the CURRENT call. */
export const CURRENT_START_F64 = 8;

const HEADER_BYTES = 128;
export const DEFAULT_QUEUE_WORDS = 8192;
/** The worker publishes at least this often while it is busy, so a deep pipeline keeps the runner fed. */
export const PUBLISH_EVERY = 64;

export const REQ_CONTROL = 1;
export const REQ_CALL = 2;
export const RES_OK = 1;
export const RES_ERROR = 2;
export const FLAG_TIMED = 1;
export const FLAG_GAS = 2;

/** Value type codes inside the queue. */
export const VT_I32 = 0;
export const VT_I64 = 1;
export const VT_F32 = 2;
export const VT_F64 = 3;

/** Reasons in ERROR records. */
export const ERROR_REASONS = ['trap', 'gas', 'exit', 'output', 'killed', 'load', 'timeout', 'memory'] as const;
export type ErrorReason = (typeof ERROR_REASONS)[number];

/** Milliseconds on a clock both threads share (timeOrigin + now agree across worker threads to microseconds). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function createCallQueue(words = DEFAULT_QUEUE_WORDS): SharedArrayBuffer {
  if (words < 64 || (words & (words - 1)) !== 0) throw new RangeError('call queue words must be a power of two ≥ 64');
  return new SharedArrayBuffer(HEADER_BYTES + 2 * 8 * words);
}

export class WordRing {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly i64: BigInt64Array;
  readonly u8: Uint8Array;
  readonly mask: number;

  constructor(
    buffer: SharedArrayBuffer,
    byteOffset: number,
    readonly size: number,
  ) {
    this.i32 = new Int32Array(buffer, byteOffset, size * 2);
    this.f64 = new Float64Array(buffer, byteOffset, size);
    this.i64 = new BigInt64Array(buffer, byteOffset, size);
    this.u8 = new Uint8Array(buffer, byteOffset, size * 8);
    this.mask = size - 1;
  }

  setPair(pos: number, lo: number, hi: number): void {
    const i = (pos & this.mask) << 1;
    this.i32[i] = lo;
    this.i32[i + 1] = hi;
  }

  lo(pos: number): number {
    return this.i32[(pos & this.mask) << 1] as number;
  }

  hi(pos: number): number {
    return this.i32[((pos & this.mask) << 1) + 1] as number;
  }

  setI64(pos: number, value: bigint): void {
    this.i64[pos & this.mask] = value;
  }

  getI64(pos: number): bigint {
    return this.i64[pos & this.mask] as bigint;
  }

  setF64(pos: number, value: number): void {
    this.f64[pos & this.mask] = value;
  }

  getF64(pos: number): number {
    return this.f64[pos & this.mask] as number;
  }

  /** Copies bytes into consecutive words from `pos` (wrapping at the ring's end); returns the words used. */
  writeBytes(pos: number, bytes: Uint8Array): number {
    const words = (bytes.length + 7) >>> 3;
    const at = (pos & this.mask) * 8;
    const first = Math.min(bytes.length, this.u8.length - at);
    this.u8.set(bytes.subarray(0, first), at);
    if (first < bytes.length) this.u8.set(bytes.subarray(first), 0);
    return words;
  }

  readBytes(pos: number, length: number): Uint8Array {
    const out = allocBytes(length);
    const at = (pos & this.mask) * 8;
    const first = Math.min(length, this.u8.length - at);
    out.set(this.u8.subarray(at, at + first));
    if (first < length) out.set(this.u8.subarray(0, length - first), first);
    return out;
  }
}

/** Both sides' view of one queue buffer. */
export class QueueView {
  readonly ctl: Int32Array;
  readonly ctlF64: Float64Array;
  readonly req: WordRing;
  readonly res: WordRing;

  constructor(readonly buffer: SharedArrayBuffer) {
    const words = (buffer.byteLength - HEADER_BYTES) / 16;
    this.ctl = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.ctlF64 = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    this.req = new WordRing(buffer, HEADER_BYTES, words);
    this.res = new WordRing(buffer, HEADER_BYTES + words * 8, words);
  }
}

export function header(kind: number, payloadWords: number): number {
  return kind | (payloadWords << 8);
}

export function headerKind(lo: number): number {
  return lo & 0xff;
}

export function headerWords(lo: number): number {
  return lo >>> 8;
}
