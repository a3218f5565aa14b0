/** Reactor instances on the V8 engine: typed calls through the call queue, validation, limits, isolation. */
import test from 'ava';

import { type CallResult, type ReactorInstance, type RunEvents, V8Engine, type WasmValue } from '../runner-proto/src/engine/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { build, I, T } from './helpers/engine-modules.js';
import { exampleBytes, requestOf } from './helpers/engine-wasm.js';

const engine = new V8Engine({ poolSize: 2, logger: createLogger('reactor-test', { level: 'silent' }) });
test.after.always(() => engine.close());

const quiet: RunEvents = { onStdout: () => {}, onStderr: () => {} };
const i32 = (value: number): WasmValue => ({ type: 'i32', value });
const i64 = (value: string): WasmValue => ({ type: 'i64', value });
const f64 = (value: number): WasmValue => ({ type: 'f64', value });
const f32 = (value: number): WasmValue => ({ type: 'f32', value });

async function calc(limits?: { gas?: number; timeMs?: number }): Promise<ReactorInstance> {
  const mod = await engine.compile('sha256:calc', exampleBytes('calc'));
  return engine.instantiate(mod, requestOf('calc.wasm', limits !== undefined ? { limits } : {}), quiet);
}

function results(r: CallResult): readonly WasmValue[] {
  if (!r.ok) throw new Error(`call failed: ${r.reason} ${r.message ?? ''}`);
  return r.results;
}

test('calc: typed calls for every value type, results typed the same way', async (t) => {
  const c = await calc();
  t.true(c.alive);
  t.deepEqual(results(await c.call('add', [i32(2), i32(3)])), [i32(5)]);
  t.deepEqual(results(await c.call('add', [i32(0x7fffffff), i32(1)])), [i32(-0x80000000)]);
  t.deepEqual(results(await c.call('add', [i32(0xffffffff), i32(0)])), [i32(-1)], 'unsigned input is taken modulo 2^32');
  t.deepEqual(results(await c.call('mul64', [i64('4294967296'), i64('-3')])), [i64('-12884901888')]);
  t.deepEqual(results(await c.call('mul64', [i64('9223372036854775807'), i64('2')])), [i64('-2')]);
  t.deepEqual(results(await c.call('mul64', [i64('18446744073709551615'), i64('1')])), [i64('-1')]);
  t.deepEqual(results(await c.call('fdiv', [f64(1), f64(3)])), [f64(1 / 3)]);
  t.deepEqual(results(await c.call('fdiv', [f64(1), f64(0)])), [f64(Infinity)]);
  t.deepEqual(results(await c.call('scale', [f32(1.5), f32(0.1)])), [f32(Math.fround(Math.fround(1.5) * Math.fround(0.1)))]);
  t.deepEqual(results(await c.call('fib', [i32(10)])), [i32(55)]);
  await c.close();
  t.false(c.alive);
});

test('state persists across calls on one instance and not across instances', async (t) => {
  const a = await calc();
  const b = await calc();
  const seq = [];
  for (let i = 0; i < 3; i++) seq.push(results(await a.call('counter', []))[0]?.value);
  t.deepEqual(seq, [1, 2, 3]);
  t.deepEqual(results(await b.call('counter', [])), [i32(1)]);
  t.is(a.memoryBytes(), 2 * 65536);
  await Promise.all([a.close(), b.close()]);
});

test('bad calls are caller errors (load, exit 1) naming the signature; the instance stays alive', async (t) => {
  const c = await calc();
  const bad = async (fn: string, args: WasmValue[], pattern: RegExp) => {
    const r = await c.call(fn, args);
    t.false(r.ok);
    if (!r.ok) {
      t.deepEqual([r.reason, r.exitCode], ['load', 1]);
      t.regex(r.message ?? '', pattern);
    }
  };
  await bad('nope', [], /no exported function "nope".*add\(i32, i32\) -> i32/);
  await bad('add', [i32(1)], /add\(i32, i32\) -> i32 takes 2 arguments, got 1/);
  await bad('add', [i32(1), i64('2')], /argument 2 of add\(i32, i32\) -> i32 must be i32, got i64/);
  await bad('add', [i32(1.5), i32(2)], /not a 32-bit integer/);
  await bad('add', [i32(2 ** 32), i32(2)], /not a 32-bit integer/);
  await bad('mul64', [i64('12x'), i64('1')], /not a 64-bit integer/);
  await bad('mul64', [i64('18446744073709551616'), i64('1')], /not a 64-bit integer/);
  await bad('fdiv', [f64(1), { type: 'f64', value: '2' as unknown as number }], /not a number/);
  await bad('add', [i32(1), i32(2)].slice(0, 0), /takes 2 arguments, got 0/);
  t.true(c.alive);
  t.deepEqual(results(await c.call('add', [i32(1), i32(2)])), [i32(3)]);
  await c.close();
});

test('many calls in flight on one instance all resolve, in order, with the right results', async (t) => {
  const c = await calc();
  const n = 20_000;
  const started = performance.now();
  const all = await Promise.all(Array.from({ length: n }, (_, i) => c.call('add', [i32(i), i32(i)])));
  const ms = performance.now() - started;
  t.true(all.every((r, i) => r.ok && r.results[0]?.value === 2 * i));
  t.true(ms < 10_000, `${n} pipelined calls took ${ms.toFixed(0)} ms`);
  const counters = await Promise.all(Array.from({ length: 100 }, () => c.call('counter', [])));
  t.deepEqual(
    counters.map((r) => (r.ok ? r.results[0]?.value : -1)),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  await c.close();
});

// A reactor with a trap, a spin, a proc_exit and output, built by hand.
const WASI = 'wasi_snapshot_preview1';
const iov = new Uint8Array(8);
new DataView(iov.buffer).setUint32(0, 16, true);
new DataView(iov.buffer).setUint32(4, 6, true);
const toolBytes = build({
  imports: [
    { module: WASI, name: 'fd_write', params: [T.i32, T.i32, T.i32, T.i32], results: [T.i32] },
    { module: WASI, name: 'proc_exit', params: [T.i32] },
  ],
  memory: { min: 1 },
  data: [
    { offset: 0, bytes: iov },
    { offset: 16, bytes: new TextEncoder().encode('hello\n') },
  ],
  fns: [
    { body: [0x00], export: 'boom' },
    { body: [...I.loop, ...I.br(0), 0x0b], export: 'spin' },
    { params: [T.i32], body: [...I.localGet(0), ...I.call(1)], export: 'quit' },
    { results: [T.i32], body: [...I.i32(1), ...I.i32(0), ...I.i32(1), ...I.i32(8), ...I.call(0), 0x1a, ...I.i32(7)], export: 'say' },
    { params: [T.i32], results: [T.i32, T.i64], body: [...I.localGet(0), ...I.localGet(0), 0xac], export: 'pair' }, // i64.extend_i32_s
    { params: [T.v128], body: [], export: 'vec' },
  ],
});

async function tool(extra: Partial<Parameters<typeof requestOf>[1]> = {}, events: RunEvents = quiet): Promise<ReactorInstance> {
  const mod = await engine.compile('sha256:tool', toolBytes);
  return engine.instantiate(mod, requestOf('tool.wasm', extra), events);
}

test('a trap ends the instance (trap, 134); later calls are killed', async (t) => {
  const x = await tool();
  const r = await x.call('boom', []);
  t.deepEqual([r.ok, !r.ok && r.reason, !r.ok && r.exitCode, !r.ok && r.message], [false, 'trap', 134, 'unreachable']);
  t.false(x.alive);
  const after = await x.call('say', []);
  t.deepEqual([after.ok, !after.ok && after.reason, !after.ok && after.exitCode], [false, 'killed', 134]);
  t.regex((!after.ok && after.message) || '', /instance has ended \(trap: unreachable\)/);
});

test('calls queued behind a trapping call are killed, not run', async (t) => {
  const x = await tool();
  const [boom, ...rest] = await Promise.all([x.call('boom', []), x.call('say', []), x.call('say', [])]);
  t.is(!boom?.ok && boom?.reason, 'trap');
  t.true(rest.every((r) => !r.ok && r.reason === 'killed'));
});

test('a call over its time limit ends the instance (timeout, 134) and others keep answering', async (t) => {
  const x = await tool();
  const healthy = await calc();
  const spinning = x.call('spin', [], { timeMs: 300 });
  const queued = x.call('say', []);
  const answers: CallResult[] = [];
  for (let i = 0; i < 5; i++) answers.push(await healthy.call('add', [i32(i), i32(1)]));
  const r = await spinning;
  t.deepEqual([r.ok, !r.ok && r.reason, !r.ok && r.exitCode], [false, 'timeout', 134]);
  t.true(r.stats.wallMs >= 300);
  t.is((await queued).ok, false);
  t.false(x.alive);
  t.true(answers.every((a, i) => a.ok && a.results[0]?.value === i + 1));
  t.true(healthy.alive);
  await healthy.close();
});

test('the time limit counts from when the call starts, not while it waits in the queue', async (t) => {
  const c = await calc();
  const calls = Array.from({ length: 2000 }, () => c.call('fib', [i32(5000)], { timeMs: 200 }));
  const all = await Promise.all(calls);
  t.true(all.every((r) => r.ok));
  await c.close();
});

test('instantiate-level limits apply to every call unless the call overrides them', async (t) => {
  const x = await tool({ limits: { timeMs: 200 } });
  const r = await x.call('spin', []);
  t.deepEqual([!r.ok && r.reason], ['timeout']);
});

test('proc_exit inside a call ends the instance with reason exit and the code', async (t) => {
  const x = await tool();
  const r = await x.call('quit', [i32(7)]);
  t.deepEqual([r.ok, !r.ok && r.reason, !r.ok && r.exitCode], [false, 'exit', 7]);
  t.false(x.alive);
});

test('output written by a call reaches the instance events; multi-value results come back', async (t) => {
  let out = '';
  const x = await tool({}, { onStdout: (c) => (out += new TextDecoder().decode(c)), onStderr: () => {} });
  t.deepEqual(results(await x.call('say', [])), [i32(7)]);
  t.deepEqual(results(await x.call('pair', [i32(-4)])), [i32(-4), i64('-4')]);
  for (let i = 0; i < 50 && out === ''; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(out, 'hello\n');
  await x.close();
});

test('exports with v128 parameters are refused as bad calls', async (t) => {
  const x = await tool();
  const r = await x.call('vec', []);
  t.deepEqual([!r.ok && r.reason, !r.ok && r.exitCode], ['load', 1]);
  t.regex((!r.ok && r.message) || '', /v128/);
  await x.close();
});

test('gas per call: deterministic counts, exhaustion ends the instance', async (t) => {
  const a = await calc({ gas: 1_000_000 });
  const b = await calc({ gas: 1_000_000 });
  const ra = await a.call('fib', [i32(20)]);
  const ra2 = await a.call('fib', [i32(20)]);
  const rb = await b.call('fib', [i32(20)]);
  t.true(ra.ok && ra2.ok && rb.ok);
  t.true((ra.stats.instructions ?? 0) > 20);
  t.is(ra.stats.instructions, ra2.stats.instructions);
  t.is(ra.stats.instructions, rb.stats.instructions);
  const more = await a.call('fib', [i32(40)]);
  t.true((more.stats.instructions ?? 0) > (ra.stats.instructions ?? 0));
  const starved = await a.call('fib', [i32(1_000_000)], { gas: 5000 });
  t.deepEqual([starved.ok, !starved.ok && starved.reason, !starved.ok && starved.exitCode], [false, 'gas', 134]);
  t.true((starved.stats.instructions ?? 0) <= 5000);
  t.false(a.alive);
  t.true(b.alive);
  await b.close();
});

test('gas on an instance created without gas is a caller error', async (t) => {
  const c = await calc();
  const r = await c.call('fib', [i32(3)], { gas: 100 });
  t.deepEqual([!r.ok && r.reason, !r.ok && r.exitCode], ['load', 1]);
  t.regex((!r.ok && r.message) || '', /limits\.gas/);
  t.true(c.alive);
  await c.close();
});

test('close() resolves calls still in flight as killed', async (t) => {
  const x = await tool();
  const pending = x.call('spin', []);
  await new Promise((r) => setTimeout(r, 50));
  await x.close();
  const r = await pending;
  t.deepEqual([r.ok, !r.ok && r.reason], [false, 'killed']);
});

test('an _initialize that traps rejects instantiate with AGT_ERR_RUN_LOAD', async (t) => {
  const bytes = build({ fns: [{ body: [0x00], export: '_initialize' }] });
  const mod = await engine.compile('sha256:bad-init', bytes);
  const err = await t.throwsAsync(engine.instantiate(mod, requestOf('b.wasm'), quiet));
  t.true(err instanceof AgentError);
  t.is((err as AgentError).code, 'AGT_ERR_RUN_LOAD');
  t.regex(err?.message ?? '', /trap: unreachable/);
});

test('an _initialize over the time limit rejects instantiate (timeout), counted from its start', async (t) => {
  const bytes = build({ fns: [{ body: [...I.loop, ...I.br(0), 0x0b], export: '_initialize' }] });
  const mod = await engine.compile('sha256:spin-init', bytes);
  const started = performance.now();
  const err = await t.throwsAsync(engine.instantiate(mod, requestOf('s.wasm', { limits: { timeMs: 200 } }), quiet));
  t.is((err as AgentError).code, 'AGT_ERR_RUN_LOAD');
  t.regex(err?.message ?? '', /timeout: _initialize exceeded the time limit of 200 ms/);
  t.true(performance.now() - started >= 200);
});

test('a module missing an import rejects instantiate with AGT_ERR_RUN_LOAD', async (t) => {
  const bytes = build({ imports: [{ module: 'env', name: 'x' }], fns: [{ body: [], export: 'f' }] });
  const mod = await engine.compile('sha256:missing-import-r', bytes);
  const err = await t.throwsAsync(engine.instantiate(mod, requestOf('m.wasm'), quiet));
  t.is((err as AgentError).code, 'AGT_ERR_RUN_LOAD');
  t.regex(err?.message ?? '', /instantiation failed/);
});

test('instances report a cold start and its time', async (t) => {
  const c = await calc();
  t.is(c.start, 'cold');
  t.true(typeof c.startMs === 'number' && c.startMs >= 0);
  await c.close();
});
