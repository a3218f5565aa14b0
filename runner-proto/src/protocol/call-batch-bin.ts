/**
 * CALL_BATCH_BIN: reactor calls and their results in a compact binary body (docs/protocol.md §8.1).
 *
 * Why not JSON: a warm call costs the engine about a microsecond, while JSON.stringify + JSON.parse + zod on both
 * sides cost about 6 µs per call (profiled with bench:runner); on the channel's hot path the encoding was most of
 * the work. The format is fixed-layout little-endian, names travel once per batch (a string table), and values
 * keep their wasm type (i64 as 8 bytes, no decimal strings).
 *
 * Validation stays at the boundary, hand-written instead of zod because zod was the hot cost: every length and
 * count is bounds-checked before it is used, reserved bits must be zero, trailing bytes are refused, and each
 * decoded field meets the same constraints as the JSON schema (callSchema, callResultSchema). A failure is an
 * AGT_ERR_PROTOCOL error naming the call, the field and the byte offset.
 *
 * One JSON distinction is not kept: `limits: {}` arrives as no limits. Both mean "the app's own limits"
 * (AppManager substitutes them for an absent object, the engine for absent fields), so nothing changes.
 */
import { AgentError } from '../errors/index.js';
import { allocBytes, utf8Bytes } from '../frame/index.js';
import type { CallMessage, CallResultMessage } from './messages.js';

export const CALL_BATCH_BIN_VERSION = 1;
/** Calls per batch, as for JSON CALL_BATCH. */
export const CALL_BATCH_MAX_CALLS = 1024;
const MAX_ARGS = 1000;
const MAX_FN_CHARS = 1024;
/** Every call names two strings (app, fn); a table longer than that is padding nobody needs. */
const MAX_STRINGS = 2 * CALL_BATCH_MAX_CALLS;
const MAX_STRING_BYTES = 0xffff;

/** Value type codes, in this order. */
export const CALL_VALUE_TYPES = ['i32', 'i64', 'f32', 'f64'] as const;
/** Failure reason codes, in this order (the reasons of exitSchema). */
export const CALL_REASONS = ['exit', 'trap', 'timeout', 'memory', 'output', 'gas', 'killed', 'load'] as const;

const LIMIT_TIME = 0x01;
const LIMIT_GAS = 0x02;
const STAT_INSTRUCTIONS = 0x01;
const STAT_START = 0x02;
const STAT_START_COLD = 0x04;
const STAT_START_MS = 0x08;
const STAT_MESSAGE = 0x10;

/** Smallest encodings: a call with no limits and no arguments, a value, an ok result with no values. */
const MIN_CALL_BYTES = 7;
const MIN_VALUE_BYTES = 5;
const MIN_RESULT_BYTES = 16;

const RESULT_OK = 0;
const RESULT_FAILED = 1;

const I32_MIN = -0x8000_0000;
const U32_MAX = 0xffff_ffff;
const I64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;
const I64_TEXT = /^-?[0-9]{1,20}$/;
const APP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A lone surrogate cannot be UTF-8: encoding would replace it, so such a name must travel as JSON. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const decoder = new TextDecoder('utf-8', { fatal: true });

type WasmValueMessage = CallMessage['args'][number];
type Limits = NonNullable<CallMessage['limits']>;
type Stats = CallResultMessage['stats'];
/** A CallResultMessage, read-only (what the engine hands back). */
export type CallResultInput =
  | { readonly ok: true; readonly results: readonly WasmValueMessage[]; readonly stats: Stats }
  | { readonly ok: false; readonly reason: (typeof CALL_REASONS)[number]; readonly exitCode: number; readonly message?: string; readonly stats: Stats };

// ---------------------------------------------------------------------------------------------------------------
// What may travel in binary

let lastGoodApp = '';

function definedKeysWithin(o: object, allowed: readonly string[]): boolean {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k) && (o as Record<string, unknown>)[k] !== undefined) return false;
  }
  return true;
}

const CALL_KEYS = ['app', 'fn', 'args', 'limits'] as const;
const VALUE_KEYS = ['type', 'value'] as const;
const LIMIT_KEYS = ['timeMs', 'gas'] as const;

function isLimitNumber(v: unknown): boolean {
  return v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function fnNameOk(fn: unknown): fn is string {
  return typeof fn === 'string' && fn.length >= 1 && (fn.length <= MAX_FN_CHARS || codePoints(fn) <= MAX_FN_CHARS);
}

function valueOk(a: unknown): boolean {
  if (a === null || typeof a !== 'object') return false;
  const { type, value } = a as { type?: unknown; value?: unknown };
  if (Object.keys(a).length !== 2 && !definedKeysWithin(a, VALUE_KEYS)) return false;
  switch (type) {
    case 'i32':
      return typeof value === 'number' && Number.isInteger(value) && value >= I32_MIN && value <= U32_MAX;
    case 'i64': {
      if (typeof value !== 'string' || !I64_TEXT.test(value)) return false;
      const big = BigInt(value);
      return big >= I64_MIN && big <= U64_MAX;
    }
    case 'f32':
    case 'f64':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return false;
  }
}

/**
 * Whether a call can travel in CALL_BATCH_BIN with exactly the meaning its JSON form has. A call that breaks the
 * JSON schema (or holds a value binary cannot carry, like an i64 out of range) should go as a JSON CALL instead,
 * so that it gets exactly the answer it always got (the runner's schema error, or the engine's own complaint).
 */
export function canTravelBinary(call: CallMessage): boolean {
  const c: unknown = call;
  if (c === null || typeof c !== 'object' || !definedKeysWithin(c, CALL_KEYS)) return false;
  if (call.app !== lastGoodApp) {
    if (typeof call.app !== 'string' || !APP_NAME.test(call.app)) return false;
    lastGoodApp = call.app;
  }
  if (!fnNameOk(call.fn) || LONE_SURROGATE.test(call.fn)) return false;
  const args: unknown = call.args;
  if (!Array.isArray(args) || args.length > MAX_ARGS) return false;
  for (let i = 0; i < args.length; i++) if (!valueOk(args[i])) return false;
  const limits: unknown = call.limits;
  if (limits !== undefined) {
    if (limits === null || typeof limits !== 'object' || !definedKeysWithin(limits, LIMIT_KEYS)) return false;
    const l = limits as Limits;
    if (!isLimitNumber(l.timeMs) || !isLimitNumber(l.gas)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  at = 0;

  constructor(size: number) {
    // A view into a shared slab (frame/bytes.ts): hence the DataView's offset.
    this.bytes = allocBytes(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  u8(v: number): void {
    this.view.setUint8(this.at, v);
    this.at += 1;
  }

  u16(v: number): void {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
  }

  u32(v: number): void {
    this.view.setUint32(this.at, v, true);
    this.at += 4;
  }

  i32(v: number): void {
    this.view.setInt32(this.at, v, true);
    this.at += 4;
  }

  i64(v: bigint): void {
    this.view.setBigInt64(this.at, v, true);
    this.at += 8;
  }

  f32(v: number): void {
    this.view.setFloat32(this.at, v, true);
    this.at += 4;
  }

  f64(v: number): void {
    this.view.setFloat64(this.at, v, true);
    this.at += 8;
  }

  raw(b: Uint8Array): void {
    this.bytes.set(b, this.at);
    this.at += b.length;
  }
}

function valueSize(type: string): number {
  return type === 'i32' || type === 'f32' ? 5 : 9;
}

function writeValue(w: Writer, v: WasmValueMessage, where: string): void {
  switch (v.type) {
    case 'i32':
      w.u8(0);
      w.i32(v.value);
      return;
    case 'i64':
      w.u8(1);
      w.i64(BigInt.asIntN(64, BigInt(v.value)));
      return;
    case 'f32':
      w.u8(2);
      w.f32(v.value);
      return;
    case 'f64':
      w.u8(3);
      w.f64(v.value);
      return;
    default:
      throw new AgentError('AGT_ERR_INTERNAL', `${where}: value type ${String((v as { type?: unknown }).type)} cannot be encoded`);
  }
}

/**
 * Encodes a CALL_BATCH_BIN request. Every call must pass canTravelBinary (the link routes the others as JSON);
 * one that does not is a programming error here, reported as AGT_ERR_INTERNAL rather than sent half-checked.
 */
export function encodeCallBatchRequest(calls: readonly CallMessage[]): Uint8Array {
  if (calls.length < 1 || calls.length > CALL_BATCH_MAX_CALLS) {
    throw new AgentError('AGT_ERR_INTERNAL', `CALL_BATCH_BIN carries 1..${CALL_BATCH_MAX_CALLS} calls, not ${calls.length}`);
  }
  const index = new Map<string, number>();
  const strings: Uint8Array[] = [];
  const refs = new Uint16Array(calls.length * 2);
  let size = 6;
  const intern = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      const b = utf8Bytes(s);
      if (b.length > MAX_STRING_BYTES) throw new AgentError('AGT_ERR_INTERNAL', `CALL_BATCH_BIN string of ${b.length} bytes exceeds ${MAX_STRING_BYTES}`);
      i = strings.length;
      index.set(s, i);
      strings.push(b);
      size += 2 + b.length;
    }
    return i;
  };
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i]!;
    if (!canTravelBinary(c)) throw new AgentError('AGT_ERR_INTERNAL', `call ${i} (${String(c?.app)}.${String(c?.fn)}) cannot travel in CALL_BATCH_BIN; send it as CALL`);
    refs[2 * i] = intern(c.app);
    refs[2 * i + 1] = intern(c.fn);
    size += 7 + (c.limits?.timeMs !== undefined ? 8 : 0) + (c.limits?.gas !== undefined ? 8 : 0);
    for (const a of c.args) size += valueSize(a.type);
  }
  const w = new Writer(size);
  w.u8(CALL_BATCH_BIN_VERSION);
  w.u8(0);
  w.u16(strings.length);
  w.u16(calls.length);
  for (const s of strings) {
    w.u16(s.length);
    w.raw(s);
  }
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i]!;
    const timeMs = c.limits?.timeMs;
    const gas = c.limits?.gas;
    w.u16(refs[2 * i]!);
    w.u16(refs[2 * i + 1]!);
    w.u8((timeMs !== undefined ? LIMIT_TIME : 0) | (gas !== undefined ? LIMIT_GAS : 0));
    w.u16(c.args.length);
    if (timeMs !== undefined) w.f64(timeMs);
    if (gas !== undefined) w.f64(gas);
    for (let j = 0; j < c.args.length; j++) writeValue(w, c.args[j]!, `call ${i} argument ${j}`);
  }
  return w.bytes;
}

/** Encodes the answer to a CALL_BATCH_BIN request: one result per call, in order. */
export function encodeCallBatchResults(results: readonly CallResultInput[]): Uint8Array {
  if (results.length > 0xffff) throw new AgentError('AGT_ERR_INTERNAL', `${results.length} results do not fit a CALL_BATCH_BIN answer`);
  let size = 4;
  let messages: Array<Uint8Array | undefined> | undefined;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const s = r.stats;
    size += 14 + (s.instructions !== undefined ? 8 : 0) + (s.startMs !== undefined ? 8 : 0);
    if (r.ok) {
      size += 2;
      for (const v of r.results) size += valueSize(v.type);
    } else {
      size += 5;
      if (r.message !== undefined) {
        messages ??= [];
        const m = utf8Bytes(r.message);
        messages[i] = m;
        size += 4 + m.length;
      }
    }
  }
  const w = new Writer(size);
  w.u8(CALL_BATCH_BIN_VERSION);
  w.u8(0);
  w.u16(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const s = r.stats;
    const where = `result ${i}`;
    if (!(s.peakPages >= 0 && s.peakPages <= U32_MAX && Number.isInteger(s.peakPages))) {
      throw new AgentError('AGT_ERR_INTERNAL', `${where}: peakPages ${s.peakPages} is not a u32`);
    }
    const message = messages?.[i];
    w.u8(r.ok ? RESULT_OK : RESULT_FAILED);
    w.u8(
      (s.instructions !== undefined ? STAT_INSTRUCTIONS : 0) |
        (s.start !== undefined ? STAT_START : 0) |
        (s.start === 'cold' ? STAT_START_COLD : 0) |
        (s.startMs !== undefined ? STAT_START_MS : 0) |
        (message !== undefined ? STAT_MESSAGE : 0),
    );
    w.f64(s.wallMs);
    w.u32(s.peakPages);
    if (s.instructions !== undefined) w.f64(s.instructions);
    if (s.startMs !== undefined) w.f64(s.startMs);
    if (r.ok) {
      w.u16(r.results.length);
      for (let j = 0; j < r.results.length; j++) writeValue(w, r.results[j]!, `${where} value ${j}`);
    } else {
      const reason = CALL_REASONS.indexOf(r.reason);
      if (reason < 0) throw new AgentError('AGT_ERR_INTERNAL', `${where}: unknown reason ${String(r.reason)}`);
      w.u8(reason);
      w.i32(r.exitCode);
      if (message !== undefined) {
        w.u32(message.length);
        w.raw(message);
      }
    }
  }
  return w.bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

class Reader {
  private readonly view: DataView;
  at = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(where: string, problem: string, field: string, at = this.at): never {
    throw new AgentError('AGT_ERR_PROTOCOL', `${this.what} body: ${where}: ${problem} (byte ${at} of ${this.bytes.length})`, { field, offset: at });
  }

  /** A count read from the body must leave room for at least `bytes`: refuses absurd counts before sizing by them. */
  fits(bytes: number, where: string, what: string, field: string): void {
    if (this.at + bytes > this.bytes.length) this.fail(where, `${what} need at least ${bytes} more bytes, ${this.bytes.length - this.at} are left`, field);
  }

  need(n: number, where: string, field: string): void {
    if (this.at + n > this.bytes.length) this.fail(where, `needs ${n} more byte${n === 1 ? '' : 's'}, the body ends`, field);
  }

  u8(where: string, field: string): number {
    this.need(1, where, field);
    return this.view.getUint8(this.at++);
  }

  u16(where: string, field: string): number {
    this.need(2, where, field);
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(where: string, field: string): number {
    this.need(4, where, field);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  i32(where: string, field: string): number {
    this.need(4, where, field);
    const v = this.view.getInt32(this.at, true);
    this.at += 4;
    return v;
  }

  i64(where: string, field: string): bigint {
    this.need(8, where, field);
    const v = this.view.getBigInt64(this.at, true);
    this.at += 8;
    return v;
  }

  f32(where: string, field: string): number {
    this.need(4, where, field);
    const v = this.view.getFloat32(this.at, true);
    this.at += 4;
    return v;
  }

  f64(where: string, field: string): number {
    this.need(8, where, field);
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  utf8(n: number, where: string, field: string): string {
    this.need(n, where, field);
    const start = this.at;
    this.at += n;
    try {
      return decoder.decode(this.bytes.subarray(start, start + n));
    } catch {
      return this.fail(where, 'is not valid UTF-8', field, start);
    }
  }

  header(where: string): number {
    const version = this.u8(where, 'version');
    if (version !== CALL_BATCH_BIN_VERSION) this.fail(where, `version ${version} is not ${CALL_BATCH_BIN_VERSION}`, 'version', 0);
    const flags = this.u8(where, 'flags');
    if (flags !== 0) this.fail(where, `reserved flags 0x${flags.toString(16)} must be 0`, 'flags', 1);
    return this.at;
  }

  end(): void {
    if (this.at !== this.bytes.length) this.fail('end', `${this.bytes.length - this.at} trailing bytes after the last entry`, '(body)');
  }

  value(where: string, field: string): WasmValueMessage {
    const at = this.at;
    const type = this.u8(where, `${field}.type`);
    switch (type) {
      case 0:
        return { type: 'i32', value: this.i32(where, `${field}.value`) };
      case 1:
        return { type: 'i64', value: this.i64(where, `${field}.value`).toString() };
      case 2:
        return { type: 'f32', value: this.f32(where, `${field}.value`) };
      case 3:
        return { type: 'f64', value: this.f64(where, `${field}.value`) };
      default:
        return this.fail(where, `value type code ${type} is not one of 0 i32, 1 i64, 2 f32, 3 f64`, `${field}.type`, at);
    }
  }
}

/** Decodes and checks a CALL_BATCH_BIN request (runner side). Throws AGT_ERR_PROTOCOL naming call, field, byte. */
export function decodeCallBatchRequest(body: Uint8Array, what = 'CALL_BATCH_BIN'): CallMessage[] {
  const r: Reader = new Reader(body, what);
  r.header('header');
  const nStrings = r.u16('header', 'strings');
  if (nStrings > MAX_STRINGS) r.fail('header', `string count ${nStrings} exceeds ${MAX_STRINGS}`, 'strings', 2);
  const nCalls = r.u16('header', 'calls');
  if (nCalls < 1 || nCalls > CALL_BATCH_MAX_CALLS) r.fail('header', `call count ${nCalls} is not in 1..${CALL_BATCH_MAX_CALLS}`, 'calls', 4);
  // Counts are checked against the bytes left before anything is sized by them.
  r.fits(nStrings * 2 + nCalls * MIN_CALL_BYTES, 'header', `${nStrings} strings and ${nCalls} calls`, 'calls');
  const strings = new Array<string>(nStrings);
  const stringAt = new Array<number>(nStrings);
  for (let i = 0; i < nStrings; i++) {
    const where = `string ${i}`;
    const n = r.u16(where, `strings.${i}`);
    stringAt[i] = r.at;
    strings[i] = r.utf8(n, where, `strings.${i}`);
  }
  // Names are checked once per string, when first used as an app or a function.
  const checkedApp = new Uint8Array(nStrings);
  const checkedFn = new Uint8Array(nStrings);
  const calls = new Array<CallMessage>(nCalls);
  for (let i = 0; i < nCalls; i++) {
    const where = `call ${i}`;
    const f = `calls.${i}`;
    const appAt = r.at;
    const app = r.u16(where, `${f}.app`);
    if (app >= nStrings) r.fail(where, `app string index ${app} is past the table (${nStrings} strings)`, `${f}.app`, appAt);
    if (checkedApp[app] === 0) {
      if (!APP_NAME.test(strings[app]!)) {
        r.fail(where, `app ${JSON.stringify(strings[app])}: app names are 1-128 of [A-Za-z0-9._-], starting with a letter or digit`, `${f}.app`, stringAt[app]);
      }
      checkedApp[app] = 1;
    }
    const fnAt = r.at;
    const fn = r.u16(where, `${f}.fn`);
    if (fn >= nStrings) r.fail(where, `fn string index ${fn} is past the table (${nStrings} strings)`, `${f}.fn`, fnAt);
    if (checkedFn[fn] === 0) {
      if (!fnNameOk(strings[fn])) r.fail(where, `fn must be 1..${MAX_FN_CHARS} characters`, `${f}.fn`, stringAt[fn]);
      checkedFn[fn] = 1;
    }
    const bitsAt = r.at;
    const bits = r.u8(where, `${f}.limits`);
    if ((bits & ~(LIMIT_TIME | LIMIT_GAS)) !== 0) r.fail(where, `reserved limit bits 0x${bits.toString(16)} must be 0`, `${f}.limits`, bitsAt);
    const countAt = r.at;
    const nArgs = r.u16(where, `${f}.args`);
    if (nArgs > MAX_ARGS) r.fail(where, `${nArgs} arguments exceed ${MAX_ARGS}`, `${f}.args`, countAt);
    r.fits(nArgs * MIN_VALUE_BYTES, where, `${nArgs} arguments`, `${f}.args`);
    let limits: { timeMs?: number; gas?: number } | undefined;
    if (bits !== 0) {
      limits = {};
      if ((bits & LIMIT_TIME) !== 0) limits.timeMs = limitValue(r, where, `${f}.limits.timeMs`);
      if ((bits & LIMIT_GAS) !== 0) limits.gas = limitValue(r, where, `${f}.limits.gas`);
    }
    const args = new Array<WasmValueMessage>(nArgs);
    for (let j = 0; j < nArgs; j++) args[j] = r.value(`${where} argument ${j}`, `${f}.args.${j}`);
    calls[i] = limits === undefined ? { app: strings[app]!, fn: strings[fn]!, args } : { app: strings[app]!, fn: strings[fn]!, args, limits };
  }
  r.end();
  return calls;
}

function limitValue(r: Reader, where: string, field: string): number {
  const at = r.at;
  const v = r.f64(where, field);
  if (!Number.isSafeInteger(v) || v < 0) r.fail(where, `${field.slice(field.lastIndexOf('.') + 1)} ${v} is not a non-negative integer`, field, at);
  return v;
}

/** Decodes and checks the answer to a CALL_BATCH_BIN request (agent side). */
export function decodeCallBatchResults(body: Uint8Array, what = 'CALL_BATCH_BIN answer'): CallResultMessage[] {
  const r: Reader = new Reader(body, what);
  r.header('header');
  const n = r.u16('header', 'results');
  r.fits(n * MIN_RESULT_BYTES, 'header', `${n} results`, 'results');
  const out = new Array<CallResultMessage>(n);
  for (let i = 0; i < n; i++) {
    const where = `result ${i}`;
    const f = `results.${i}`;
    const kindAt = r.at;
    const kind = r.u8(where, `${f}.ok`);
    if (kind !== RESULT_OK && kind !== RESULT_FAILED) r.fail(where, `status ${kind} is neither 0 (ok) nor 1 (failed)`, `${f}.ok`, kindAt);
    const bitsAt = r.at;
    const bits = r.u8(where, `${f}.stats`);
    const allowed = STAT_INSTRUCTIONS | STAT_START | STAT_START_COLD | STAT_START_MS | (kind === RESULT_FAILED ? STAT_MESSAGE : 0);
    if ((bits & ~allowed) !== 0) r.fail(where, `reserved stat bits 0x${(bits & ~allowed).toString(16)} must be 0`, `${f}.stats`, bitsAt);
    if ((bits & STAT_START_COLD) !== 0 && (bits & STAT_START) === 0) r.fail(where, 'start is cold but not present', `${f}.stats.start`, bitsAt);
    const wallAt = r.at;
    const wallMs = r.f64(where, `${f}.stats.wallMs`);
    if (!(wallMs >= 0 && Number.isFinite(wallMs))) r.fail(where, `wallMs ${wallMs} is not a finite number ≥ 0`, `${f}.stats.wallMs`, wallAt);
    const peakPages = r.u32(where, `${f}.stats.peakPages`);
    let stats: Stats;
    let instructions: number | undefined;
    let startMs: number | undefined;
    if ((bits & STAT_INSTRUCTIONS) !== 0) {
      const at = r.at;
      instructions = r.f64(where, `${f}.stats.instructions`);
      if (!Number.isSafeInteger(instructions) || instructions < 0) r.fail(where, `instructions ${instructions} is not a non-negative integer`, `${f}.stats.instructions`, at);
    }
    if ((bits & STAT_START_MS) !== 0) {
      const at = r.at;
      startMs = r.f64(where, `${f}.stats.startMs`);
      if (!(startMs >= 0 && Number.isFinite(startMs))) r.fail(where, `startMs ${startMs} is not a finite number ≥ 0`, `${f}.stats.startMs`, at);
    }
    if (bits === 0) stats = { wallMs, peakPages };
    else {
      const s: { wallMs: number; peakPages: number; instructions?: number; start?: 'cold' | 'warm'; startMs?: number } = { wallMs, peakPages };
      if (instructions !== undefined) s.instructions = instructions;
      if ((bits & STAT_START) !== 0) s.start = (bits & STAT_START_COLD) !== 0 ? 'cold' : 'warm';
      if (startMs !== undefined) s.startMs = startMs;
      stats = s;
    }
    if (kind === RESULT_OK) {
      const count = r.u16(where, `${f}.results`);
      r.fits(count * MIN_VALUE_BYTES, where, `${count} values`, `${f}.results`);
      const results = new Array<WasmValueMessage>(count);
      for (let j = 0; j < count; j++) results[j] = r.value(`${where} value ${j}`, `${f}.results.${j}`);
      out[i] = { ok: true, results, stats };
    } else {
      const reasonAt = r.at;
      const code = r.u8(where, `${f}.reason`);
      const reason = CALL_REASONS[code];
      if (reason === undefined) r.fail(where, `reason code ${code} is not in 0..${CALL_REASONS.length - 1}`, `${f}.reason`, reasonAt);
      const exitCode = r.i32(where, `${f}.exitCode`);
      if ((bits & STAT_MESSAGE) !== 0) {
        const length = r.u32(where, `${f}.message`);
        out[i] = { ok: false, reason, exitCode, message: r.utf8(length, where, `${f}.message`), stats };
      } else {
        out[i] = { ok: false, reason, exitCode, stats };
      }
    }
  }
  r.end();
  return out;
}
