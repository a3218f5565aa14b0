/** Warm pools on the V8 engine: instances created ahead, configured per run; warm/cold reported; pool upkeep. */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { type RunEvents, V8Engine } from '../runner-proto/src/engine/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { build, T } from './helpers/engine-modules.js';
import { exampleBytes, requestOf, runCollect } from './helpers/engine-wasm.js';

const silent = createLogger('warm-test', { level: 'silent' });
const quiet: RunEvents = { onStdout: () => {}, onStderr: () => {} };

async function waitFor(check: () => boolean, ms = 5000): Promise<boolean> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

test('runs without a warm pool are cold; after prewarm they are warm, with argv and env set per run', async (t) => {
  const engine = new V8Engine({ poolSize: 1, logger: silent });
  t.teardown(() => engine.close());
  const hello = await engine.compile('sha256:hello', exampleBytes('hello'));
  const cold = await runCollect(engine, hello, requestOf('hello.wasm', { args: ['c'] }));
  t.is(cold.result.stats.start, 'cold');
  t.is(await engine.prewarm(hello, 2), 2);
  t.is(engine.warmInstances(hello), 2);
  for (let i = 0; i < 5; i++) {
    const run = await runCollect(engine, hello, requestOf('hello.wasm', { args: [`#${i}`, '--exit', String(i)], env: { GREETING: `g${i}` } }));
    t.is(run.stdout, `hello from wasm\n#${i}\nGREETING=g${i}\n`);
    t.deepEqual([run.result.reason, run.result.exitCode], ['exit', i]);
    t.is(run.result.stats.start, 'warm');
    t.true(typeof run.result.stats.startMs === 'number' && run.result.stats.startMs >= 0);
    // Each worker refills its instance in the background after a run.
    await waitFor(() => engine.warmInstances(hello) === 2);
  }
});

test('warm instances get their own stdin and preopens', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  const echo = await engine.compile('sha256:echo', exampleBytes('echo'));
  await engine.prewarm(echo, 1);
  const a = await runCollect(engine, echo, requestOf('echo.wasm', { stdin: new TextEncoder().encode('first\n') }));
  await waitFor(() => engine.warmInstances(echo) === 1);
  const b = await runCollect(engine, echo, requestOf('echo.wasm', { stdin: new TextEncoder().encode('second\n') }));
  t.deepEqual([a.stdout, a.result.stats.start, b.stdout, b.result.stats.start], ['FIRST\n', 'warm', 'SECOND\n', 'warm']);

  const dir = mkdtempSync(path.join(tmpdir(), 'warm-preopen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'f.txt'), 'inside\n');
  const probe = await engine.compile('sha256:fsprobe', exampleBytes('fsprobe'));
  await engine.prewarm(probe, 1);
  const read = await runCollect(engine, probe, requestOf('fsprobe.wasm', { args: ['read', '/d/f.txt'], preopens: [{ guest: '/d', host: dir, readonly: true }] }));
  t.deepEqual([read.stdout, read.result.stats.start], ['inside\n', 'warm']);
  const missing = await runCollect(engine, probe, requestOf('fsprobe.wasm', { args: ['ls', '/'], preopens: [{ guest: '/d', host: path.join(dir, 'nope'), readonly: true }] }));
  t.deepEqual([missing.result.reason, missing.result.exitCode], ['load', 1]);
});

test('warm pools are per variant: a page-limited or gas pool does not serve plain runs', async (t) => {
  const engine = new V8Engine({ poolSize: 1, logger: silent });
  t.teardown(() => engine.close());
  const grow = await engine.compile('sha256:grow', exampleBytes('grow'));
  await engine.prewarm(grow, 1, { memoryPages: 32 });
  t.is(engine.warmInstances(grow), 0);
  t.is(engine.warmInstances(grow, { memoryPages: 32 }), 1);
  const limited = await runCollect(engine, grow, requestOf('grow.wasm', { limits: { memoryPages: 32 } }));
  t.deepEqual([limited.stdout, limited.result.stats.start], ['grow failed after 32 pages\n', 'warm']);
  const hello = await engine.compile('sha256:hello', exampleBytes('hello'));
  await engine.prewarm(hello, 1, { gas: 1 });
  const metered = await runCollect(engine, hello, requestOf('hello.wasm', { limits: { gas: 1e9 } }));
  t.deepEqual([metered.result.stats.start, metered.stdout], ['warm', 'hello from wasm\n']);
  t.true((metered.result.stats.instructions ?? 0) > 0);
  const plain = await runCollect(engine, hello, requestOf('hello.wasm'));
  t.is(plain.result.stats.start, 'cold');
});

test('a warm worker lost to a timeout is replaced; prewarm(0) scales to zero; forget releases the pool', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  const spin = await engine.compile('sha256:spin', exampleBytes('spin'));
  await engine.prewarm(spin, 1);
  const run = await runCollect(engine, spin, requestOf('spin.wasm', { limits: { timeMs: 100 } }));
  t.deepEqual([run.result.reason, run.result.stats.start], ['timeout', 'warm']);
  t.true(await waitFor(() => engine.warmInstances(spin) === 1), 'the pool refilled after its worker was terminated');
  t.is(await engine.prewarm(spin, 0), 0);
  t.true(await waitFor(() => engine.warmInstances(spin) === 0));
  const hello = await engine.compile('sha256:hello', exampleBytes('hello'));
  await engine.prewarm(hello, 2);
  engine.forget('sha256:hello');
  t.is(engine.warmInstances(hello), 0);
  await t.throwsAsync(engine.prewarm(hello, 1), { instanceOf: AgentError });
});

test('prewarm rejects with AGT_ERR_RUN_LOAD when the module cannot be instantiated', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  const bytes = build({ imports: [{ module: 'env', name: 'absent' }], fns: [{ body: [], export: '_start' }] });
  const mod = await engine.compile('sha256:unlinkable', bytes);
  const err = await t.throwsAsync(engine.prewarm(mod, 2));
  t.true(err instanceof AgentError);
  t.is((err as AgentError).code, 'AGT_ERR_RUN_LOAD');
  t.regex(err?.message ?? '', /instantiation failed/);
  const run = await runCollect(engine, mod, requestOf('u.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode], ['load', 1]);
});

test('several instances per worker: sequential runs stay warm while the worker refills', async (t) => {
  const engine = new V8Engine({ poolSize: 0, instancesPerWorker: 3, logger: silent });
  t.teardown(() => engine.close());
  const hello = await engine.compile('sha256:hello', exampleBytes('hello'));
  t.is(await engine.prewarm(hello, 3), 3);
  const starts = [];
  for (let i = 0; i < 3; i++) starts.push((await runCollect(engine, hello, requestOf('hello.wasm'))).result.stats.start);
  t.deepEqual(starts, ['warm', 'warm', 'warm']);
});

test('reactors from a warm pool start warm and fresh (their own state)', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  const calc = await engine.compile('sha256:calc', exampleBytes('calc'));
  await engine.prewarm(calc, 2);
  const a = await engine.instantiate(calc, requestOf('calc.wasm'), quiet);
  const b = await engine.instantiate(calc, requestOf('calc.wasm'), quiet);
  t.deepEqual([a.start, b.start], ['warm', 'warm']);
  const first = await a.call('counter', []);
  await a.call('counter', []);
  const other = await b.call('counter', []);
  t.deepEqual([first.ok && first.results[0]?.value, other.ok && other.results[0]?.value], [1, 1]);
  // The pool replaces the workers the reactors took.
  t.true(await waitFor(() => engine.warmInstances(calc) === 2));
  await Promise.all([a.close(), b.close()]);
});

test('a module with a wasm start function is loaded ahead but instantiated per run (its start sees the run)', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  // (start $s) where $s sets a global; _start reads nothing: just proves prewarm does not pre-run it.
  const base = build({
    globals: [{ type: T.i32, mutable: true, init: [0x41, 0x00] }],
    fns: [{ body: [0x41, 0x01, 0x24, 0x00] }, { body: [], export: '_start' }],
  });
  // Insert a start section (id 8) naming function 0, before the code section (id 10).
  const codeAt = lastSectionStart(base, 0x0a);
  const bytes = Uint8Array.from([...base.subarray(0, codeAt), 0x08, 0x01, 0x00, ...base.subarray(codeAt)]);
  const mod = await engine.compile('sha256:with-start', bytes);
  t.is(await engine.prewarm(mod, 1), 0);
  const run = await runCollect(engine, mod, requestOf('s.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode, run.result.stats.start], ['exit', 0, 'cold']);
});

/** Offset of the section with this id (walking the section headers). */
function lastSectionStart(bytes: Uint8Array, id: number): number {
  let at = 8;
  let found = -1;
  while (at < bytes.length) {
    const sid = bytes[at] as number;
    let size = 0;
    let shift = 1;
    let p = at + 1;
    for (;;) {
      const b = bytes[p++] as number;
      size += (b & 0x7f) * shift;
      shift *= 128;
      if ((b & 0x80) === 0) break;
    }
    if (sid === id) found = at;
    at = p + size;
  }
  return found;
}

test('a pool that cools hands its worker to the next pool: no new thread, and the old module is unloaded', async (t) => {
  const engine = new V8Engine({ poolSize: 0, logger: silent });
  t.teardown(() => engine.close());
  // White-box: how many worker threads the engine has started and not yet terminated.
  const threads = (): number => (engine as unknown as { all: Set<unknown> }).all.size;
  const hello = await engine.compile('sha256:hello', exampleBytes('hello'));
  const echo = await engine.compile('sha256:echo', exampleBytes('echo'));
  t.is(await engine.prewarm(hello, 1), 1);
  const before = threads();
  t.is(await engine.prewarm(hello, 0), 0);
  t.is(await engine.prewarm(echo, 1), 1);
  t.is(threads(), before, 'the cooled pool\'s worker was reused');
  t.is(engine.warmInstances(hello), 0);
  const run = await runCollect(engine, echo, { ...requestOf('echo.wasm'), stdin: Buffer.from('abc') });
  t.deepEqual([run.stdout, run.result.stats.start], ['ABC', 'warm']);
  // Its next run of hello is cold: the reused worker no longer holds it.
  t.is((await runCollect(engine, hello, requestOf('hello.wasm'))).result.stats.start, 'cold');
});
