import test from 'ava';
import fc from 'fast-check';
import fs from 'node:fs';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { FLAG_BODY_CRC } from '../runner-proto/src/frame/index.js';
import {
  CALL_REASONS,
  MsgType,
  callBatchResultSchema,
  callResultSchema,
  canTravelBinary,
  decodeCallBatchRequest,
  decodeCallBatchResults,
  encodeCallBatchRequest,
  encodeCallBatchResults,
  exitSchema,
  type AppOptions,
  type CallMessage,
  type CallResultMessage,
} from '../runner-proto/src/protocol/index.js';
import { example } from './helpers/paths.js';
import { startRunner, type RunnerUnderTest } from './helpers/runner-process.js';

// CALL_BATCH_BIN (protocol/call-batch-bin.ts, docs/protocol.md §8.1): the codec on its own, then the same calls
// through a real runner in both encodings.

type Value = CallMessage['args'][number];
const i32 = (value: number): Value => ({ type: 'i32', value });
const i64 = (value: string): Value => ({ type: 'i64', value });
const f32 = (value: number): Value => ({ type: 'f32', value });
const f64 = (value: number): Value => ({ type: 'f64', value });

const CALLS: CallMessage[] = [
  { app: 'calc', fn: 'add', args: [i32(20), i32(22)] },
  { app: 'calc', fn: 'mul64', args: [i64('-9223372036854775808'), i64('4')], limits: { timeMs: 100, gas: 5000 } },
  { app: 'calc', fn: 'fdiv', args: [f64(1), f64(-0.1)] },
  { app: 'other.app-1', fn: 'scale', args: [f32(1.5), f32(-2)], limits: { gas: 0 } },
  { app: 'calc', fn: 'counter', args: [] },
  { app: 'calc', fn: 'fn with ünïcode ✓ 😀', args: [i32(-2147483648), i64('9223372036854775807'), i32(2147483647)], limits: { timeMs: 0 } },
];

const RESULTS: CallResultMessage[] = [
  { ok: true, results: [i32(42)], stats: { wallMs: 0.1234, peakPages: 2, start: 'warm', startMs: 0.5 } },
  { ok: true, results: [i64('-12'), f32(3), f64(Math.PI)], stats: { wallMs: 0, peakPages: 65536, instructions: 123456789 } },
  { ok: true, results: [], stats: { wallMs: 7.5, peakPages: 0, start: 'cold', startMs: 12.25 } },
  { ok: false, reason: 'trap', exitCode: 134, message: 'wasm trap: unreachable ✗', stats: { wallMs: 1, peakPages: 3, instructions: 0 } },
  { ok: false, reason: 'load', exitCode: 1, stats: { wallMs: 0, peakPages: 0 } },
  { ok: false, reason: 'exit', exitCode: -5, message: '', stats: { wallMs: 2, peakPages: 1, start: 'warm' } },
];

function protocolError(t: import('ava').ExecutionContext, f: () => unknown, message: RegExp, field?: string): void {
  const err = t.throws(f, { instanceOf: AgentError, message });
  t.is(err?.code, 'AGT_ERR_PROTOCOL');
  if (field !== undefined) t.is(err?.details.field, field, `field of: ${err?.message}`);
  t.is(typeof err?.details.offset, 'number', 'the error says where');
}

// ---------------------------------------------------------------------------------------------------------------
// Codec

test('requests round trip: every value type, limits, a shared string table', (t) => {
  const body = encodeCallBatchRequest(CALLS);
  // i64 values come back in canonical form; these are already canonical.
  t.deepEqual(decodeCallBatchRequest(body), CALLS);
  // 'calc' is sent once although five calls name it.
  t.is(Buffer.from(body).toString('latin1').split('calc').length - 1, 1);
});

test('results round trip: ok and failed, every stat combination, messages with and without text', (t) => {
  t.deepEqual(decodeCallBatchResults(encodeCallBatchResults(RESULTS)), RESULTS);
  t.deepEqual(decodeCallBatchResults(encodeCallBatchResults([])), []);
});

test('the reason codes are exactly the exit reasons, in the documented order', (t) => {
  t.deepEqual([...CALL_REASONS], [...exitSchema.shape.reason.options]);
  t.deepEqual([...CALL_REASONS], ['exit', 'trap', 'timeout', 'memory', 'output', 'gas', 'killed', 'load']);
});

test('i64 and f32 values keep their bits; NaN, infinities and -0 survive (JSON could not carry them)', (t) => {
  const r: CallResultMessage[] = [
    { ok: true, results: [f64(NaN), f64(Infinity), f32(-Infinity), f64(-0), f32(Math.fround(0.1)), i64('9223372036854775807')], stats: { wallMs: 0, peakPages: 0 } },
  ];
  const back = decodeCallBatchResults(encodeCallBatchResults(r))[0]!;
  t.true(back.ok);
  const v = back.ok ? back.results.map((x) => x.value) : [];
  t.true(Number.isNaN(v[0]));
  t.is(v[1], Infinity);
  t.is(v[2], -Infinity);
  t.true(Object.is(v[3], -0));
  t.is(v[4], Math.fround(0.1));
  t.is(v[5], '9223372036854775807');
  // An unsigned i64 argument travels as its two's complement, as the engine would take it.
  const [c] = decodeCallBatchRequest(encodeCallBatchRequest([{ app: 'a', fn: 'f', args: [i64('18446744073709551615'), i64('-0'), i64('007')] }]));
  t.deepEqual(c!.args, [i64('-1'), i64('0'), i64('7')]);
});

test('every truncation of a valid body is refused with a protocol error that says where', (t) => {
  const req = encodeCallBatchRequest(CALLS);
  for (let n = 0; n < req.length; n++) protocolError(t, () => decodeCallBatchRequest(req.subarray(0, n)), /CALL_BATCH_BIN body: .*byte \d+ of \d+/);
  const res = encodeCallBatchResults(RESULTS);
  for (let n = 0; n < res.length; n++) protocolError(t, () => decodeCallBatchResults(res.subarray(0, n)), /CALL_BATCH_BIN answer body: .*byte \d+ of \d+/);
});

/** A little-endian byte builder for hand-made (and broken) bodies. */
class B {
  private readonly parts: number[] = [];
  u8(...v: number[]): this {
    for (const x of v) this.parts.push(x & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v, v >> 8);
  }
  u32(v: number): this {
    return this.u8(v, v >> 8, v >> 16, v >>> 24);
  }
  i32(v: number): this {
    return this.u32(v >>> 0);
  }
  f64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    return this.u8(...b);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.u16(b.length).u8(...b);
  }
  get bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** Header and string table ["calc", "add"], then `n` calls written by `calls`. */
const request = (n: number, calls: (b: B) => B, strings: string[] = ['calc', 'add']): Uint8Array => {
  const b = new B().u8(1, 0).u16(strings.length).u16(n);
  for (const s of strings) b.str(s);
  return calls(b).bytes;
};
/** calc.add(i32 1, i32 2) */
const addCall = (b: B): B => b.u16(0).u16(1).u8(0).u16(2).u8(0).i32(1).u8(0).i32(2);

const BAD_REQUESTS: Array<{ name: string; body: Uint8Array; message: RegExp; field: string }> = [
  { name: 'empty body', body: new Uint8Array(0), message: /header: needs 1 more byte/, field: 'version' },
  { name: 'unknown version', body: new B().u8(2, 0).u16(0).u16(1).bytes, message: /version 2 is not 1/, field: 'version' },
  { name: 'reserved flags', body: new B().u8(1, 4).u16(0).u16(1).bytes, message: /reserved flags 0x4 must be 0/, field: 'flags' },
  { name: 'zero calls', body: request(0, (b) => b), message: /call count 0 is not in 1\.\.1024/, field: 'calls' },
  { name: 'too many calls', body: request(1025, addCall), message: /call count 1025 is not in 1\.\.1024/, field: 'calls' },
  { name: 'too many strings', body: new B().u8(1, 0).u16(2049).u16(1).bytes, message: /string count 2049 exceeds 2048/, field: 'strings' },
  { name: 'counts larger than the body', body: new B().u8(1, 0).u16(0).u16(1000).bytes, message: /0 strings and 1000 calls need at least 7000 more bytes, 0 are left/, field: 'calls' },
  { name: 'string past the end', body: new B().u8(1, 0).u16(1).u16(1).u16(50).u8(...Buffer.from('calc')).u8(0, 0, 0).bytes, message: /string 0: needs 50 more bytes/, field: 'strings.0' },
  { name: 'invalid UTF-8', body: request(1, addCall, ['calc', '\u0000']).map((x, i) => (i === 14 ? 0xff : x)), message: /string 1: is not valid UTF-8 \(byte 14 of/, field: 'strings.1' },
  { name: 'app index past the table', body: request(1, (b) => b.u16(2).u16(1).u8(0).u16(0)), message: /call 0: app string index 2 is past the table \(2 strings\)/, field: 'calls.0.app' },
  { name: 'fn index past the table', body: request(1, (b) => b.u16(0).u16(7).u8(0).u16(0)), message: /call 0: fn string index 7 is past the table/, field: 'calls.0.fn' },
  { name: 'bad app name', body: request(1, addCall, ['../etc', 'add']), message: /call 0: app "\.\.\/etc": app names are 1-128/, field: 'calls.0.app' },
  { name: 'empty function name', body: request(1, addCall, ['calc', '']), message: /call 0: fn must be 1\.\.1024 characters/, field: 'calls.0.fn' },
  { name: 'function name too long', body: request(1, addCall, ['calc', 'x'.repeat(1025)]), message: /fn must be 1\.\.1024 characters/, field: 'calls.0.fn' },
  { name: 'reserved limit bits', body: request(1, (b) => b.u16(0).u16(1).u8(0x84).u16(0)), message: /call 0: reserved limit bits 0x84 must be 0/, field: 'calls.0.limits' },
  { name: 'too many arguments', body: request(1, (b) => b.u16(0).u16(1).u8(0).u16(1001)), message: /call 0: 1001 arguments exceed 1000/, field: 'calls.0.args' },
  { name: 'more arguments than bytes', body: request(1, (b) => b.u16(0).u16(1).u8(0).u16(3).u8(0).i32(1)), message: /call 0: 3 arguments need at least 15 more bytes, 5 are left/, field: 'calls.0.args' },
  { name: 'fractional time limit', body: request(1, (b) => b.u16(0).u16(1).u8(1).u16(0).f64(1.5)), message: /call 0: timeMs 1\.5 is not a non-negative integer/, field: 'calls.0.limits.timeMs' },
  { name: 'negative gas', body: request(1, (b) => b.u16(0).u16(1).u8(2).u16(0).f64(-1)), message: /call 0: gas -1 is not a non-negative integer/, field: 'calls.0.limits.gas' },
  { name: 'NaN time limit', body: request(1, (b) => b.u16(0).u16(1).u8(1).u16(0).f64(NaN)), message: /timeMs NaN is not a non-negative integer/, field: 'calls.0.limits.timeMs' },
  { name: 'unknown value type', body: request(1, (b) => b.u16(0).u16(1).u8(0).u16(2).u8(0).i32(1).u8(9).i32(0)), message: /call 0 argument 1: value type code 9 is not one of 0 i32, 1 i64, 2 f32, 3 f64 \(byte 29 of/, field: 'calls.0.args.1.type' },
  { name: 'value cut short', body: request(1, (b) => b.u16(0).u16(1).u8(0).u16(1).u8(1).i32(1)), message: /call 0 argument 0: needs 8 more bytes, the body ends/, field: 'calls.0.args.0.value' },
  { name: 'trailing bytes', body: request(1, (b) => addCall(b).u8(0)), message: /end: 1 trailing bytes after the last entry/, field: '(body)' },
  { name: 'a second call that is broken', body: request(2, (b) => addCall(b).u16(0).u16(1).u8(0).u16(1).u8(4).i32(0)), message: /call 1 argument 0: value type code 4/, field: 'calls.1.args.0.type' },
];

for (const c of BAD_REQUESTS) {
  test(`a malformed request is refused, naming the field and byte: ${c.name}`, (t) => {
    protocolError(t, () => decodeCallBatchRequest(c.body), c.message, c.field);
  });
}

/** Header and `n` results written by `results`. */
const answer = (n: number, results: (b: B) => B): Uint8Array => results(new B().u8(1, 0).u16(n)).bytes;
/** ok, no stats bits, wallMs 1, peakPages 2, then `rest`. */
const okHead = (b: B, bits = 0): B => b.u8(0, bits).f64(1).u32(2);

const BAD_RESULTS: Array<{ name: string; body: Uint8Array; message: RegExp; field: string }> = [
  { name: 'unknown version', body: new B().u8(0, 0).u16(0).bytes, message: /version 0 is not 1/, field: 'version' },
  { name: 'count larger than the body', body: answer(3, (b) => okHead(b).u16(0)), message: /3 results need at least 48 more bytes, 16 are left/, field: 'results' },
  { name: 'unknown status', body: answer(1, (b) => b.u8(2, 0).f64(1).u32(2).u16(0)), message: /result 0: status 2 is neither 0 \(ok\) nor 1 \(failed\)/, field: 'results.0.ok' },
  { name: 'reserved stat bits', body: answer(1, (b) => okHead(b, 0x40).u16(0)), message: /result 0: reserved stat bits 0x40 must be 0/, field: 'results.0.stats' },
  { name: 'a message on an ok result', body: answer(1, (b) => okHead(b, 0x10).u16(0)), message: /reserved stat bits 0x10 must be 0/, field: 'results.0.stats' },
  { name: 'cold without a start', body: answer(1, (b) => okHead(b, 0x04).u16(0)), message: /start is cold but not present/, field: 'results.0.stats.start' },
  { name: 'negative wallMs', body: answer(1, (b) => b.u8(0, 0).f64(-1).u32(2).u16(0)), message: /wallMs -1 is not a finite number ≥ 0/, field: 'results.0.stats.wallMs' },
  { name: 'infinite wallMs', body: answer(1, (b) => b.u8(0, 0).f64(Infinity).u32(2).u16(0)), message: /wallMs Infinity is not a finite number/, field: 'results.0.stats.wallMs' },
  { name: 'fractional instructions', body: answer(1, (b) => okHead(b, 0x01).f64(0.5).u16(0)), message: /instructions 0\.5 is not a non-negative integer/, field: 'results.0.stats.instructions' },
  { name: 'NaN startMs', body: answer(1, (b) => okHead(b, 0x08).f64(NaN).u16(0)), message: /startMs NaN is not a finite number/, field: 'results.0.stats.startMs' },
  { name: 'unknown value type', body: answer(1, (b) => okHead(b).u16(1).u8(7).i32(0)), message: /result 0 value 0: value type code 7/, field: 'results.0.results.0.type' },
  { name: 'more values than bytes', body: answer(1, (b) => okHead(b).u16(40).u8(0).i32(0)), message: /result 0: 40 values need at least 200 more bytes/, field: 'results.0.results' },
  { name: 'unknown reason', body: answer(1, (b) => b.u8(1, 0).f64(1).u32(2).u8(8).i32(134)), message: /result 0: reason code 8 is not in 0\.\.7/, field: 'results.0.reason' },
  { name: 'message past the end', body: answer(1, (b) => b.u8(1, 0x10).f64(1).u32(2).u8(1).i32(134).u32(1000).u8(65)), message: /result 0: needs 1000 more bytes/, field: 'results.0.message' },
  { name: 'message not UTF-8', body: answer(1, (b) => b.u8(1, 0x10).f64(1).u32(2).u8(1).i32(134).u32(2).u8(0xc3, 0x28)), message: /result 0: is not valid UTF-8/, field: 'results.0.message' },
  { name: 'trailing bytes', body: answer(1, (b) => okHead(b).u16(0).u8(1, 2)), message: /2 trailing bytes/, field: '(body)' },
];

for (const c of BAD_RESULTS) {
  test(`a malformed answer is refused, naming the field and byte: ${c.name}`, (t) => {
    protocolError(t, () => decodeCallBatchResults(c.body), c.message, c.field);
  });
}

test('what may travel in binary: exactly the calls the JSON schema accepts and binary can carry', (t) => {
  const ok: CallMessage[] = [
    { app: 'a', fn: 'f', args: [] },
    { app: 'A.b_c-9', fn: 'x'.repeat(1024), args: [i32(-2147483648), i32(4294967295), i64('-9223372036854775808'), f32(1e39), f64(-0)] },
    { app: 'a', fn: '😀'.repeat(1024), args: [], limits: {} },
    { app: 'a', fn: 'f', args: [], limits: { timeMs: 0, gas: Number.MAX_SAFE_INTEGER } },
    { app: 'a', fn: 'f', args: [], limits: undefined },
  ];
  for (const c of ok) t.true(canTravelBinary(c), JSON.stringify(c));
  const no: unknown[] = [
    { app: '-a', fn: 'f', args: [] },
    { app: 'a', fn: '', args: [] },
    { app: 'a', fn: 'x'.repeat(1025), args: [] },
    { app: 'a', fn: '\ud800', args: [] },
    { app: 'a', fn: 'f', args: [i32(4294967296)] },
    { app: 'a', fn: 'f', args: [i32(1.5)] },
    { app: 'a', fn: 'f', args: [i64('18446744073709551616')] },
    { app: 'a', fn: 'f', args: [i64('-9223372036854775809')] },
    { app: 'a', fn: 'f', args: [{ type: 'i64', value: 5 }] },
    { app: 'a', fn: 'f', args: [i64('1e3')] },
    { app: 'a', fn: 'f', args: [f64(NaN)] },
    { app: 'a', fn: 'f', args: [f32(Infinity)] },
    { app: 'a', fn: 'f', args: [{ type: 'v128', value: 0 }] },
    { app: 'a', fn: 'f', args: [{ type: 'i32', value: 1, extra: true }] },
    { app: 'a', fn: 'f', args: Array.from({ length: 1001 }, () => i32(0)) },
    { app: 'a', fn: 'f', args: [], limits: { timeMs: -1 } },
    { app: 'a', fn: 'f', args: [], limits: { memoryPages: 1 } },
    { app: 'a', fn: 'f', args: [], extra: 1 },
    { app: 'a', fn: 'f', args: 'none' },
  ];
  for (const c of no) t.false(canTravelBinary(c as CallMessage), JSON.stringify(c));
  // A key whose value is undefined is absent in JSON too.
  t.true(canTravelBinary({ app: 'a', fn: 'f', args: [{ type: 'i32', value: 1, extra: undefined } as Value], extra: undefined } as CallMessage));
  t.throws(() => encodeCallBatchRequest([no[0] as CallMessage]), { message: /cannot travel in CALL_BATCH_BIN; send it as CALL/ });
});

const valueArb: fc.Arbitrary<Value> = fc.oneof(
  fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }).map(i32),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => i64(v.toString())),
  fc.float({ noNaN: true, noDefaultInfinity: true }).map((v) => f32(Object.is(v, -0) ? 0 : v)),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(f64),
);
const nameArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const limitArb = fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined });
const callArb: fc.Arbitrary<CallMessage> = fc
  .record({
    app: fc.oneof(fc.constant('calc'), nameArb),
    fn: fc.oneof(fc.constant('add'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 })),
    args: fc.array(valueArb, { maxLength: 8 }),
    limits: fc.option(fc.record({ timeMs: limitArb, gas: limitArb }), { nil: undefined }),
  })
  .map((c) => {
    const limits = c.limits && Object.fromEntries(Object.entries(c.limits).filter(([, v]) => v !== undefined));
    return limits === undefined ? { app: c.app, fn: c.fn, args: c.args } : { app: c.app, fn: c.fn, args: c.args, limits };
  });
const statsArb = fc.record(
  {
    wallMs: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }).map((v) => (Object.is(v, -0) ? 0 : v)),
    peakPages: fc.integer({ min: 0, max: 0xffff_ffff }),
    instructions: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    start: fc.constantFrom('cold' as const, 'warm' as const),
    startMs: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }).map((v) => (Object.is(v, -0) ? 0 : v)),
  },
  { requiredKeys: ['wallMs', 'peakPages'] },
);
const resultArb: fc.Arbitrary<CallResultMessage> = fc.oneof(
  fc.record({ ok: fc.constant(true as const), results: fc.array(valueArb, { maxLength: 4 }), stats: statsArb }),
  fc.record(
    {
      ok: fc.constant(false as const),
      reason: fc.constantFrom(...CALL_REASONS),
      exitCode: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
      message: fc.string({ unit: 'grapheme', maxLength: 40 }),
      stats: statsArb,
    },
    { requiredKeys: ['ok', 'reason', 'exitCode', 'stats'] },
  ),
);

/** The decoder builds stats keys in one order; compare field by field, not by key order. */
const byKey = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
const normalise = (x: unknown): unknown =>
  JSON.parse(JSON.stringify(x, (_, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(byKey)) : v)));

test('property: any valid batch round trips, and what the JSON schema makes of it is what binary makes of it', (t) => {
  fc.assert(
    fc.property(fc.array(callArb, { minLength: 1, maxLength: 20 }), (calls) => {
      for (const c of calls) if (!canTravelBinary(c)) return; // e.g. a lone surrogate in a generated name
      const back = decodeCallBatchRequest(encodeCallBatchRequest(calls));
      // An empty limits object means what no limits object means (the app's own limits apply): it is not sent.
      const expected = calls.map(({ limits, ...c }) => ({
        ...c,
        args: c.args.map((a) => (a.type === 'f32' ? f32(Math.fround(a.value)) : a)),
        ...(limits && Object.keys(limits).length > 0 ? { limits } : {}),
      }));
      t.deepEqual(normalise(back), normalise(expected));
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: any results round trip and satisfy the JSON answer schema', (t) => {
  fc.assert(
    fc.property(fc.array(resultArb, { maxLength: 20 }), (results) => {
      const back = decodeCallBatchResults(encodeCallBatchResults(results));
      const expected = results.map((r) => (r.ok ? { ...r, results: r.results.map((a) => (a.type === 'f32' ? f32(Math.fround(a.value)) : a)) } : r));
      t.deepEqual(normalise(back), normalise(expected));
      t.true(callBatchResultSchema.safeParse({ results: back }).success);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: arbitrary or mutated bytes never decode to anything but a value or an AGT_ERR_PROTOCOL', (t) => {
  const valid = encodeCallBatchRequest(CALLS);
  const validResults = encodeCallBatchResults(RESULTS);
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([at, v]) => valid.map((x, i) => (i === at ? v : x))),
    fc.tuple(fc.nat(validResults.length - 1), fc.integer({ min: 0, max: 255 })).map(([at, v]) => validResults.map((x, i) => (i === at ? v : x))),
  );
  fc.assert(
    fc.property(bodies, (body) => {
      for (const decode of [decodeCallBatchRequest, decodeCallBatchResults]) {
        try {
          decode(body);
        } catch (err) {
          if (!(err instanceof AgentError) || err.code !== 'AGT_ERR_PROTOCOL') throw err;
        }
      }
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------------------------
// Through a real runner: the binary batch answers exactly what the JSON batch answers

const calc = fs.readFileSync(example('calc'));
const opts = (o: Partial<AppOptions> = {}): AppOptions => ({ args: [], env: {}, preopens: [], limits: {}, pool: { min: 1, max: 1, idleMs: 60_000 }, ...o });

let rt: RunnerUnderTest;
test.before(async () => {
  rt = await startRunner();
  const digest = await rt.put(calc);
  await rt.link.deploy({ app: 'calc', digest, kind: 'reactor', options: opts() });
  await rt.link.deploy({ app: 'gas', digest, kind: 'reactor', options: opts({ limits: { gas: 1_000_000 } }) });
});
test.after.always(async () => {
  await rt?.stop();
});

/** Stateless calls, good and bad: the answers do not depend on which encoding ran first. */
const MIXED: CallMessage[] = [
  { app: 'calc', fn: 'add', args: [i32(20), i32(22)] },
  { app: 'calc', fn: 'add', args: [i32(4294967295), i32(2)] },
  { app: 'calc', fn: 'mul64', args: [i64('4294967296'), i64('-3')] },
  { app: 'calc', fn: 'fdiv', args: [f64(1), f64(8)] },
  { app: 'calc', fn: 'scale', args: [f32(1.5), f32(2)] },
  { app: 'nope', fn: 'add', args: [i32(1), i32(2)] },
  { app: 'calc', fn: 'missing', args: [] },
  { app: 'calc', fn: 'add', args: [f64(1), i32(1)] },
  { app: 'gas', fn: 'fib', args: [i32(10)] },
  { app: 'gas', fn: 'fib', args: [i32(10)], limits: { gas: 100_000 } },
  { app: 'calc', fn: 'add', args: [i32(1), i32(1)], limits: { timeMs: 5000 } },
];

/** Timings differ run to run; everything else must not. */
const stable = (r: CallResultMessage): unknown => ({ ...r, stats: { ...r.stats, wallMs: typeof r.stats.wallMs, startMs: typeof r.stats.startMs } });

test.serial('the same batch as CALL_BATCH and as CALL_BATCH_BIN: identical answers, per call, in order', async (t) => {
  const ep = await rt.link.connected();
  const json = await ep.requestJson(MsgType.CALL_BATCH, { calls: MIXED }, callBatchResultSchema);
  const f = await ep.request(MsgType.CALL_BATCH_BIN, encodeCallBatchRequest(MIXED), { flags: FLAG_BODY_CRC });
  t.is(f.flags, FLAG_BODY_CRC, 'the answer is binary, checksummed');
  const bin = decodeCallBatchResults(f.body);
  t.deepEqual(bin.map(stable), json.results.map(stable));
  // And what they are: results typed like the arguments, a missing app fails only its own call, bad calls too.
  t.deepEqual(bin.map((r) => (r.ok ? r.results : r.reason)), [
    [i32(42)],
    [i32(1)],
    [i64('-12884901888')],
    [f64(0.125)],
    [f32(3)],
    'load',
    'load',
    'load',
    [i32(55)],
    [i32(55)],
    [i32(2)],
  ]);
  const missing = bin[5]!;
  t.true(!missing.ok && missing.exitCode === 1 && /^AGT_ERR_NOT_FOUND: no app named nope/.test(missing.message ?? ''), JSON.stringify(missing));
  t.regex((bin[6] as { message?: string }).message ?? '', /bad call: no exported function "missing"/);
  t.regex((bin[7] as { message?: string }).message ?? '', /argument 1 of .* must be i32, got f64/);
  t.true(bin[8]!.stats.instructions! > 0, 'gas apps count instructions');
  t.is(bin[8]!.stats.instructions, bin[9]!.stats.instructions, 'deterministic counts');
  for (const r of bin) if (r.ok) t.is(r.stats.start, 'warm');
});

test.serial('through the link: calls issued together travel as one binary batch and settle one by one', async (t) => {
  const before = rt.link.counters().framesOut;
  const results = await Promise.all(MIXED.map((c) => rt.link.call(c)));
  t.is(rt.link.counters().framesOut - before, 1, 'one frame for the whole batch');
  t.deepEqual(results.map((r) => (r.ok ? r.results : r.reason)).slice(0, 6), [[i32(42)], [i32(1)], [i64('-12884901888')], [f64(0.125)], [f32(3)], 'load']);
  // A call whose JSON form the runner refuses, or that binary cannot carry, goes alone as CALL: it gets the answer
  // it always got, and the others in its turn are not affected.
  const mixed = await Promise.allSettled([
    rt.link.call({ app: 'calc', fn: 'add', args: [i32(1), i32(2)] }),
    rt.link.call({ app: 'calc', fn: 'mul64', args: [i64('99999999999999999999'), i64('1')] }),
    rt.link.call({ app: 'calc', fn: 'add', args: [i32(1), i32(2)], limits: { memoryPages: 1 } as never }),
    rt.link.call({ app: 'calc', fn: 'add', args: [i32(3), i32(4)] }),
  ]);
  t.is(mixed[0].status, 'fulfilled');
  t.deepEqual(mixed[0].status === 'fulfilled' && mixed[0].value.ok && mixed[0].value.results, [i32(3)]);
  const big = mixed[1].status === 'fulfilled' ? mixed[1].value : undefined;
  t.true(big !== undefined && !big.ok && big.reason === 'load' && /is not a 64-bit integer/.test(big.message ?? ''), JSON.stringify(big));
  t.is(mixed[2].status, 'rejected');
  t.regex(mixed[2].status === 'rejected' ? String((mixed[2].reason as Error).message) : '', /CALL body field limits/);
  t.deepEqual(mixed[3].status === 'fulfilled' && mixed[3].value.ok && mixed[3].value.results, [i32(7)]);
});

test.serial('through the link: calls from separate callbacks of one event-loop turn still travel as one batch', async (t) => {
  // Requests on many connections reach the agent in callbacks of their own, with microtasks run between them:
  // timers due together stand in for them here.
  const before = rt.link.counters().framesOut;
  const results = await new Promise<Awaited<ReturnType<typeof rt.link.call>>[]>((resolve, reject) => {
    const pending: Promise<Awaited<ReturnType<typeof rt.link.call>>>[] = [];
    for (let i = 0; i < 10; i++) setTimeout(() => {
      pending.push(rt.link.call({ app: 'calc', fn: 'add', args: [i32(i), i32(100)] }));
      if (pending.length === 10) Promise.all(pending).then(resolve, reject);
    }, 0);
  });
  t.is(rt.link.counters().framesOut - before, 1, 'one frame for the ten calls');
  t.deepEqual(results.map((r) => (r.ok ? r.results : r.reason)), Array.from({ length: 10 }, (_, i) => [i32(i + 100)]));
});

test.serial('a malformed CALL_BATCH_BIN is answered with ERROR AGT_ERR_PROTOCOL naming the field and byte', async (t) => {
  const ep = await rt.link.connected();
  const body = request(1, (b) => b.u16(0).u16(1).u8(0).u16(2).u8(0).i32(1).u8(9).i32(0));
  const err = await t.throwsAsync(ep.request(MsgType.CALL_BATCH_BIN, body, { flags: FLAG_BODY_CRC }), { instanceOf: AgentError });
  t.is(err?.code, 'AGT_ERR_PROTOCOL');
  t.regex(err?.message ?? '', /CALL_BATCH_BIN body: call 0 argument 1: value type code 9 .* \(byte 29 of 34\)/);
  t.is(err?.details.field, 'calls.0.args.1.type');
  // The link is fine afterwards.
  t.true((await rt.link.call({ app: 'calc', fn: 'add', args: [i32(1), i32(1)] })).ok);
});

test.serial('warm and cold: a batch that grows the pool reports the cold start on the call that waited for it', async (t) => {
  const digest = await rt.put(calc);
  const starts = async (app: string, how: 'bin' | 'json' | 'calls'): Promise<Array<string | undefined>> => {
    await rt.link.deploy({ app, digest, kind: 'reactor', options: opts({ pool: { min: 1, max: 2, idleMs: 60_000 } }) });
    const calls = Array.from({ length: 10 }, (_, i) => ({ app, fn: 'add', args: [i32(i), i32(1)] }));
    const ep = await rt.link.connected();
    const results =
      how === 'bin' ? decodeCallBatchResults((await ep.request(MsgType.CALL_BATCH_BIN, encodeCallBatchRequest(calls), { flags: FLAG_BODY_CRC })).body)
      : how === 'json' ? (await ep.requestJson(MsgType.CALL_BATCH, { calls }, callBatchResultSchema)).results
        // Ten CALL frames, handled in one turn by the runner: the one-call-at-a-time path (AppManager.call).
      : await Promise.all(calls.map((c) => ep.requestJson(MsgType.CALL, c, callResultSchema)));
    t.deepEqual(results.map((r) => r.ok && r.results[0]!.value), calls.map((_, i) => i + 1));
    return results.map((r) => r.stats.start);
  };
  const bin = await starts('grow-bin', 'bin');
  t.deepEqual(await starts('grow-json', 'json'), bin);
  // Ten CALL frames usually reach the runner in one turn and are then placed exactly as the batch; on a loaded
  // machine they can arrive spread out, when the first answers before the last arrive: fewer wait, so the
  // pool grows at most once and every call still answers.
  const lone = await starts('grow-calls', 'calls');
  t.true(lone.filter((s) => s === 'cold').length <= 1 && lone.every((s) => s === 'warm' || s === 'cold'), JSON.stringify(lone));
  // Four calls queue on the warm instance, the fifth starts the second instance (the pool's max), the rest queue.
  t.deepEqual(bin, ['warm', 'warm', 'warm', 'warm', 'cold', 'warm', 'warm', 'warm', 'warm', 'warm']);
  const apps = await rt.link.apps();
  const a = apps.find((x) => x.app === 'grow-bin')!;
  t.is(a.calls, 10);
  t.is(a.coldStarts, 1);
  t.is(a.warmStarts, 9);
});

test.serial('more calls than an instance queues: the rest wait their turn and all answer in order', async (t) => {
  const calls = Array.from({ length: 600 }, (_, i) => ({ app: 'calc', fn: 'add', args: [i32(i), i32(i)] }));
  const results = await Promise.all(calls.map((c) => rt.link.call(c)));
  t.deepEqual(results.map((r) => r.ok && r.results[0]!.value), calls.map((_, i) => 2 * i));
});

test.serial('a trap in a batch ends that instance: the calls queued behind it are killed, later calls are served', async (t) => {
  // fib on a gas app with a budget too small traps with reason gas; the calls written behind it are killed.
  const calls: CallMessage[] = [
    { app: 'gas', fn: 'add', args: [i32(1), i32(1)] },
    { app: 'gas', fn: 'fib', args: [i32(25)], limits: { gas: 10 } },
    { app: 'gas', fn: 'add', args: [i32(2), i32(2)] },
  ];
  const results = await Promise.all(calls.map((c) => rt.link.call(c)));
  t.deepEqual(results.map((r) => (r.ok ? 'ok' : r.reason)), ['ok', 'gas', 'killed']);
  const after = await Promise.all([1, 2].map((n) => rt.link.call({ app: 'gas', fn: 'add', args: [i32(n), i32(n)] })));
  t.true(after.every((r) => r.ok), JSON.stringify(after));
});
