/**
 * Gas: the instruction decoder, the instrumentation, and deterministic counting through the V8 engine.
 * The reference for "exact" is the per-instruction variant (a charge before every single instruction, which is
 * trivially exact); the per-run variant the engine uses must give the same totals, and a budget of exactly the
 * total must be enough while one less must not.
 */
import test from 'ava';

import {
  GAS_LEFT_EXPORT,
  GAS_OUT_EXPORT,
  GAS_UNLIMITED,
  instrumentGas,
  V8Engine,
} from '../runner-proto/src/engine/index.js';
import { bodyRuns, readInstruction } from '../runner-proto/src/engine/gas.js';
import { ByteReader, WasmFormatError } from '../runner-proto/src/engine/wasm-binary.js';
import { type WasmGlobal, type WasmImports, WasiExit, WasiHost, wasmApi } from '../runner-proto/src/wasi/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { build, extraTypeIndex, I, type ModuleSpec, T } from './helpers/engine-modules.js';
import { exampleBytes, requestOf, runCollect, uleb } from './helpers/engine-wasm.js';

const Wasm = wasmApi();
const engine = new V8Engine({ poolSize: 2, logger: createLogger('gas-test', { level: 'silent' }) });
test.after.always(() => engine.close());

interface Metered {
  readonly exports: Readonly<Record<string, unknown>>;
  /** Sets the budget and runs `fn`; returns what it returned and the instructions used. */
  run(budget: bigint, fn: () => unknown): { value: unknown; used: bigint; exhausted: boolean; error?: unknown };
}

function meter(bytes: Uint8Array, imports: WasmImports = {}, perInstruction = false): Metered {
  const instrumented = instrumentGas(bytes, { perInstruction }).bytes;
  if (!Wasm.validate(instrumented)) throw new Error('instrumented module does not validate');
  const instance = new Wasm.Instance(new Wasm.Module(instrumented), imports);
  const left = instance.exports[GAS_LEFT_EXPORT] as WasmGlobal;
  const out = instance.exports[GAS_OUT_EXPORT] as WasmGlobal;
  return {
    exports: instance.exports,
    run(budget, fn) {
      left.value = budget;
      out.value = 0;
      try {
        const value = fn();
        return { value, used: budget - (left.value as bigint), exhausted: false };
      } catch (error) {
        return { value: undefined, used: budget - (left.value as bigint), exhausted: out.value === 1, error };
      }
    },
  };
}

// ---- one function using every supported feature, straight-line, so its count is its length ------------

const simd = (sub: number, ...imm: number[]) => [0xfd, ...uleb(sub), ...imm];
const lanes = Array.from({ length: 16 }, (_, i) => i);
const featureSpec = (): { spec: ModuleSpec; count: number } => {
  const multi = extraTypeIndex({ fns: [{ body: [] }, { body: [] }] }); // 2 functions, no imports
  const ins: number[][] = [
    I.i32(200), [0xc0], [0x1a], // i32.extend8_s
    [0x43, 0x00, 0x00, 0xc0, 0x3f], [0xfc, 0x00], [0x1a], // f32.const 1.5; i32.trunc_sat_f32_s
    I.i32(0), I.i32(0), I.i32(4), [0xfc, 0x08, 0x00, 0x00], // memory.init 0 0
    [0xfc, 0x09, 0x00], // data.drop 0
    I.i32(8), I.i32(0), I.i32(4), [0xfc, 0x0a, 0x00, 0x00], // memory.copy
    I.i32(16), I.i32(7), I.i32(4), [0xfc, 0x0b, 0x00], // memory.fill
    [0xd0, 0x70], [0xd1], [0x1a], // ref.null func; ref.is_null
    [0xd2, 0x01], [0x1a], // ref.func 1
    [0xfc, 0x10, 0x00], [0x1a], // table.size 0
    I.i32(1), I.i32(2), I.i32(1), [0x1c, 0x01, T.i32], [0x1a], // select (result i32)
    [0x02, ...uleb(multi)], I.i32(3), I.i32(4), [0x0b], [0x6a], [0x1a], // block (type []→[i32 i32]) … end; i32.add
    simd(12, ...lanes), simd(12, ...lanes), simd(13, ...lanes), simd(27, 1), [0x1a], // v128.const ×2, shuffle, extract_lane
    I.i32(32), simd(0, 0x04, 0x00), simd(27, 0), [0x1a], // v128.load; i32x4.extract_lane 0
    I.i32(48), simd(92, 0x02, 0x00), [0x1a], // v128.load32_zero
    I.i32(64), I.i32(64), simd(0, 0x04, 0x00), simd(84, 0x00, 0x00, 3), [0x1a], // v128.load8_lane
    simd(12, ...lanes), simd(12, ...lanes), simd(174), simd(98), [0x1a], // i32x4.add; i8x16.popcnt
    I.i32(0), [0x2d, 0x00, 0x09], I.i32(0), [0x2d, 0x00, 0x11], [0x6a], // load8_u 9 + load8_u 17 = 2 + 7
  ];
  const spec: ModuleSpec = {
    fns: [
      { results: [T.i32], body: ins.flat(), export: 'features' },
      { body: [], export: 'nothing' },
    ],
    extraTypes: [{ params: [], results: [T.i32, T.i32] }],
    memory: { min: 1 },
    table: 2,
    passiveData: [new Uint8Array([1, 2, 3, 4])],
    declare: [1],
  };
  return { spec, count: ins.length + 1 };
};

test('the decoder walks MVP, sign-ext, sat-conv, bulk memory, reference types, multi-value and SIMD; the count is exact', (t) => {
  const { spec, count } = featureSpec();
  const bytes = build(spec);
  t.true(Wasm.validate(bytes), 'the test module itself is valid');
  for (const perInstruction of [false, true]) {
    const m = meter(bytes, {}, perInstruction);
    const r = m.run(1_000_000n, () => (m.exports.features as () => number)());
    t.is(r.value, 9);
    t.is(r.used, BigInt(count));
  }
});

test('threads, tail calls and legacy exception handling instructions decode too', (t) => {
  const body = [
    0x06, 0x40, // try
    ...I.i32(1), 0x1a,
    0x19, // catch_all
    0x0b, // end
    ...I.i32(0), ...I.i32(0), 0xfe, 0x00, 0x02, 0x00, 0x1a, // memory.atomic.notify
    0xfe, 0x03, 0x00, // atomic.fence
    ...I.i32(0), 0xfe, 0x10, 0x02, 0x00, 0x1a, // i32.atomic.load
  ];
  const r = new ByteReader(Uint8Array.from([...body, 0x0b]));
  const ops: number[] = [];
  while (!r.done) ops.push(readInstruction(r));
  t.deepEqual(ops, [0x06, 0x41, 0x1a, 0x19, 0x0b, 0x41, 0x41, 0xfe, 0x1a, 0xfe, 0x41, 0xfe, 0x1a, 0x0b]);
  const tail = build({
    fns: [
      { params: [T.i32], results: [T.i32], body: [...I.localGet(0), 0x12, 0x01], export: 'f' }, // return_call 1
      { params: [T.i32], results: [T.i32], body: [...I.localGet(0), ...I.i32(1), 0x6a] },
    ],
  });
  const m = meter(tail);
  const res = m.run(100n, () => (m.exports.f as (n: number) => number)(41));
  // f: local.get, return_call (its `end` never runs); g: local.get, i32.const, i32.add, end.
  t.deepEqual([res.value, res.used], [42, 2n + 4n]);
});

test('unsupported or malformed code is refused with WasmFormatError', (t) => {
  t.throws(() => readInstruction(new ByteReader(Uint8Array.from([0xfb, 0x00]))), { instanceOf: WasmFormatError });
  t.throws(() => readInstruction(new ByteReader(Uint8Array.from([0xfc, 0x40]))), { instanceOf: WasmFormatError });
  t.throws(() => readInstruction(new ByteReader(Uint8Array.from([0x02, 0x63, 0x00]))), { instanceOf: WasmFormatError, message: /typed function references/ });
  t.throws(() => readInstruction(new ByteReader(Uint8Array.from([0x41]))), { instanceOf: WasmFormatError, message: /end of input/ });
  const clash = build({ fns: [{ body: [], export: GAS_LEFT_EXPORT }] });
  t.throws(() => instrumentGas(clash), { message: /already exports/ });
  t.throws(() => instrumentGas(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 9])), { instanceOf: WasmFormatError });
});

test('runs: loop bodies are charged per iteration, untargeted block ends and loop ends are not run starts', (t) => {
  // block loop (local.get 0; br_if 1; br 0) end end  — one function, no locals
  const body = Uint8Array.from([0x00, 0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x0d, 0x01, 0x0c, 0x00, 0x0b, 0x0b, 0x0b]);
  const { runs } = bodyRuns(body, 0, body.length);
  // [block loop] [local.get br_if] [br] [end(loop) end(block)] [end(function)]: the loop's end is not a run start,
  // the block's end is (br_if 1 targets it).
  t.deepEqual(
    runs.map((r) => r.cost),
    [2, 2, 1, 2, 1],
  );
});

/** sum(n): a loop with br_if and br_table, so runs, joins and back edges all occur. */
const loopModule = build({
  fns: [
    {
      params: [T.i32],
      results: [T.i32],
      locals: [[1, T.i32]],
      export: 'sum',
      body: [
        ...I.block,
        ...I.loop,
        ...I.localGet(0), 0x45, ...I.brIf(1), // if n == 0 break
        ...I.block, ...I.block, ...I.block,
        ...I.localGet(0), ...I.i32(3), 0x70, // n % 3
        0x0e, 0x02, 0x00, 0x01, 0x02, // br_table 0 1 2
        0x0b, // end (case 0)
        ...I.localGet(1), ...I.i32(1), 0x6a, ...I.localSet(1),
        0x0b, // end (case 1)
        ...I.localGet(1), ...I.i32(2), 0x6a, ...I.localSet(1),
        0x0b, // end (case 2)
        ...I.localGet(0), ...I.i32(1), 0x6b, ...I.localSet(0),
        ...I.br(0),
        0x0b,
        0x0b,
        ...I.localGet(1),
      ],
    },
  ],
});

test('per-run counting equals per-instruction counting, and the budget boundary is exact', (t) => {
  const block = meter(loopModule);
  const each = meter(loopModule, {}, true);
  for (const n of [0, 1, 2, 3, 10, 1000]) {
    const a = block.run(GAS_UNLIMITED, () => (block.exports.sum as (n: number) => number)(n));
    const b = each.run(GAS_UNLIMITED, () => (each.exports.sum as (n: number) => number)(n));
    t.is(a.value, b.value);
    t.is(a.used, b.used, `n=${n}`);
    const enough = block.run(a.used, () => (block.exports.sum as (n: number) => number)(n));
    t.deepEqual([enough.exhausted, enough.used, enough.value], [false, a.used, a.value]);
    const short = block.run(a.used - 1n, () => (block.exports.sum as (n: number) => number)(n));
    t.true(short.exhausted, `n=${n}: one instruction short must run out`);
    t.true(short.used <= a.used - 1n);
  }
});

test('nbody: per-run and per-instruction counts agree, and instrumentation does not change the output', (t) => {
  const bytes = exampleBytes('nbody');
  const counts: bigint[] = [];
  for (const perInstruction of [false, true, false]) {
    let out = '';
    const host = new WasiHost({ args: ['nbody.wasm', '200'], env: {}, output: (_fd, c) => (out += new TextDecoder().decode(c)) });
    const m = meter(bytes, { wasi_snapshot_preview1: host.wasiImport }, perInstruction);
    host.initialize({ exports: m.exports });
    const r = m.run(GAS_UNLIMITED, () => (m.exports._start as () => void)());
    if (r.error !== undefined && !(r.error instanceof WasiExit)) throw r.error;
    t.is(out, '-0.169075164\n-0.169026909\n');
    counts.push(r.used);
  }
  t.is(counts[0], counts[1]);
  t.is(counts[0], counts[2]);
});

test('imported globals keep their indices; the counter goes after them', (t) => {
  const module = Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type () -> i32
    0x02, 0x08, 0x01, 0x01, 0x65, 0x01, 0x67, 0x03, 0x7f, 0x00, // import "e" "g" (global i32)
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
    0x0a, 0x06, 0x01, 0x04, 0x00, 0x23, 0x00, 0x0b, // f: global.get 0
  ]);
  t.true(Wasm.validate(module));
  const g = new Wasm.Global({ value: 'i32', mutable: false }, 77);
  const m = meter(module, { e: { g } });
  const r = m.run(100n, () => (m.exports.f as () => number)());
  t.deepEqual([r.value, r.used], [77, 2n]);
});

// ---- through the engine ----------------------------------------------------------------------------------

test('engine: nbody under a gas limit prints the right result and counts deterministically', async (t) => {
  const mod = await engine.compile('sha256:nbody', exampleBytes('nbody'));
  const a = await runCollect(engine, mod, requestOf('nbody.wasm', { args: ['1000'], limits: { gas: 1e12 } }));
  const b = await runCollect(engine, mod, requestOf('nbody.wasm', { args: ['1000'], limits: { gas: 1e12 } }));
  t.is(a.stdout, '-0.169075164\n-0.169087605\n');
  t.is(b.stdout, a.stdout);
  t.deepEqual([a.result.reason, a.result.exitCode], ['exit', 0]);
  t.true((a.result.stats.instructions ?? 0) > 1_000_000);
  t.is(a.result.stats.instructions, b.result.stats.instructions);
  const plain = await runCollect(engine, mod, requestOf('nbody.wasm', { args: ['1000'] }));
  t.is(plain.result.stats.instructions, undefined);
});

test('engine: the same module and input give the same count; different input, a different count', async (t) => {
  const mod = await engine.compile('sha256:hello', exampleBytes('hello'));
  const run = (args: string[]) => runCollect(engine, mod, requestOf('hello.wasm', { args, env: { GREETING: 'x' }, limits: { gas: 1e9 } }));
  const [a, b, c] = await Promise.all([run(['one']), run(['one']), run(['one', 'two'])]);
  t.is(a.result.stats.instructions, b.result.stats.instructions);
  t.not(a.result.stats.instructions, c.result.stats.instructions);
});

test('engine: exhausted gas ends the run with reason gas, exit 134, instructions within the budget', async (t) => {
  const spin = await engine.compile('sha256:spin', exampleBytes('spin'));
  const run = await runCollect(engine, spin, requestOf('spin.wasm', { limits: { gas: 100_000, timeMs: 10_000 } }));
  t.deepEqual([run.result.reason, run.result.exitCode], ['gas', 134]);
  t.regex(run.result.message ?? '', /gas limit of 100000/);
  const used = run.result.stats.instructions ?? -1;
  t.true(used <= 100_000 && used > 99_000, String(used));
  const nbody = await engine.compile('sha256:nbody', exampleBytes('nbody'));
  const full = await runCollect(engine, nbody, requestOf('nbody.wasm', { args: ['50'], limits: { gas: 1e12 } }));
  const exact = full.result.stats.instructions ?? 0;
  const fits = await runCollect(engine, nbody, requestOf('nbody.wasm', { args: ['50'], limits: { gas: exact } }));
  t.deepEqual([fits.result.reason, fits.result.stats.instructions], ['exit', exact]);
  const short = await runCollect(engine, nbody, requestOf('nbody.wasm', { args: ['50'], limits: { gas: exact - 1 } }));
  t.is(short.result.reason, 'gas');
});

test('engine: a module the instrumenter cannot follow fails a gas run with load, exit 1', async (t) => {
  const bytes = build({ fns: [{ body: [], export: '_start' }, { body: [], export: GAS_OUT_EXPORT }] });
  const mod = await engine.compile('sha256:clash', bytes);
  const run = await runCollect(engine, mod, requestOf('c.wasm', { limits: { gas: 1000 } }));
  t.deepEqual([run.result.reason, run.result.exitCode], ['load', 1]);
  t.regex(run.result.message ?? '', /cannot instrument/);
  const plain = await runCollect(engine, mod, requestOf('c.wasm'));
  t.deepEqual([plain.result.reason, plain.result.exitCode], ['exit', 0]);
});
