import test from 'ava';
import { performance } from 'node:perf_hooks';

import {
  createEngine,
  declaredMemories,
  limitMemoryPages,
  V8Engine,
  type Engine,
} from '../runner-proto/src/engine/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { buildModule, exampleBytes, I32, op, printThenSpin, requestOf, runCollect } from './helpers/engine-wasm.js';

// One engine for the file: the pool and compiled modules are shared, as in the runner.
const engine: Engine = createEngine('v8', { logger: createLogger('engine-test', { level: 'silent' }) });
test.after.always(() => engine.close());

async function compileExample(name: string, file = name) {
  return engine.compile(`sha256:${file}`, exampleBytes(name, file));
}

test('hello prints its greeting, args and GREETING, and exits with --exit N', async (t) => {
  const mod = await compileExample('hello');
  t.is(mod.kind, 'command');
  const run = await runCollect(
    engine,
    mod,
    requestOf('hello.wasm', { args: ['a', 'b c', '--exit', '3'], env: { GREETING: 'hi' } }),
  );
  t.is(run.stdout, 'hello from wasm\na\nb c\nGREETING=hi\n');
  t.is(run.stderr, '');
  t.is(run.result.reason, 'exit');
  t.is(run.result.exitCode, 3);
  t.is(run.result.stats.peakPages, 2);
  t.true(run.result.stats.wallMs > 0);
});

test('hello without args exits 0', async (t) => {
  const run = await runCollect(engine, await compileExample('hello'), requestOf('hello.wasm'));
  t.is(run.stdout, 'hello from wasm\n');
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 0]);
});

test('nbody 1000 prints the reference energies', async (t) => {
  const run = await runCollect(engine, await compileExample('nbody'), requestOf('nbody.wasm', { args: ['1000'] }));
  t.is(run.stdout, '-0.169075164\n-0.169087605\n');
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 0]);
});

test('echo uppercases stdin; absent stdin is EOF at once', async (t) => {
  const mod = await compileExample('echo');
  const run = await runCollect(engine, mod, requestOf('echo.wasm', { stdin: new TextEncoder().encode('Hello, stdin\n') }));
  t.is(run.stdout, 'HELLO, STDIN\n');
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 0]);
  const empty = await runCollect(engine, mod, requestOf('echo.wasm'));
  t.is(empty.stdout, '');
  t.deepEqual([empty.result.reason, empty.result.exitCode], ['exit', 0]);
});

test('echo streams a stdin larger than the output ring, byte for byte', async (t) => {
  const input = new Uint8Array(1_500_000).map((_, i) => 97 + (i % 26));
  const run = await runCollect(engine, await compileExample('echo'), requestOf('echo.wasm', { stdin: input }));
  t.is(run.result.exitCode, 0);
  t.is(run.stdoutBytes, input.length);
  t.is(run.stdout, new TextDecoder().decode(input).toUpperCase());
});

test('trap ends with reason trap, exit 134, after its output', async (t) => {
  const run = await runCollect(engine, await compileExample('trap'), requestOf('trap.wasm'));
  t.is(run.stdout, 'about to trap\n');
  t.is(run.result.reason, 'trap');
  t.is(run.result.exitCode, 134);
  t.is(run.result.message, 'unreachable');
});

test('overflow (native stack) is a trap, exit 134', async (t) => {
  const run = await runCollect(engine, await compileExample('overflow'), requestOf('overflow.wasm'));
  t.is(run.stdout, 'recursing\n');
  t.is(run.result.reason, 'trap');
  t.is(run.result.exitCode, 134);
  t.regex(run.result.message ?? '', /call stack size/i);
});

test('spin hits the time limit (timeout, 134) while a concurrent hello still succeeds', async (t) => {
  const spin = await compileExample('spin');
  const hello = await compileExample('hello');
  const started = performance.now();
  const [spun, greeted] = await Promise.all([
    runCollect(engine, spin, requestOf('spin.wasm', { limits: { timeMs: 300 } })),
    runCollect(engine, hello, requestOf('hello.wasm', { args: ['x'] })),
  ]);
  t.is(spun.result.reason, 'timeout');
  t.is(spun.result.exitCode, 134);
  t.true(spun.result.stats.wallMs >= 300);
  t.true(performance.now() - started < 5000);
  t.is(greeted.stdout, 'hello from wasm\nx\n');
  t.deepEqual([greeted.result.reason, greeted.result.exitCode], ['exit', 0]);
});

test('output written just before a timeout is still delivered', async (t) => {
  const mod = await engine.compile('sha256:print-then-spin', printThenSpin('last words\n'));
  const run = await runCollect(engine, mod, requestOf('p.wasm', { limits: { timeMs: 200 } }));
  t.is(run.result.reason, 'timeout');
  t.is(run.stdout, 'last words\n');
});

test('grow under memoryPages 32 fails growth inside the module and exits 0', async (t) => {
  const run = await runCollect(engine, await compileExample('grow'), requestOf('grow.wasm', { limits: { memoryPages: 32 } }));
  const match = /^grow failed after (\d+) pages\n$/.exec(run.stdout);
  t.truthy(match, run.stdout);
  t.true(Number(match?.[1]) <= 32);
  t.is(Number(match?.[1]), 32);
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 0]);
  t.true(run.result.stats.peakPages <= 32);
  t.is(run.result.stats.peakPages, 32);
});

test('a page limit below the initial memory fails to load (exit 1), as WasmEdge fails instantiation', async (t) => {
  const run = await runCollect(engine, await compileExample('grow'), requestOf('grow.wasm', { limits: { memoryPages: 1 } }));
  t.is(run.result.reason, 'load');
  t.is(run.result.exitCode, 1);
  t.regex(run.result.message ?? '', /limit of 1 pages/);
});

test('flood with outputBytes 1 MiB ends with reason output after exactly 1 MiB', async (t) => {
  const run = await runCollect(engine, await compileExample('flood'), requestOf('flood.wasm', { limits: { outputBytes: 1 << 20 } }));
  t.is(run.result.reason, 'output');
  t.is(run.result.exitCode, 134);
  t.is(run.stdoutBytes, 1 << 20);
  t.true(/^(x{4095}\n)+$/.test(run.stdout));
});

test('a module importing a function nobody provides fails with load, exit 1', async (t) => {
  const bytes = buildModule({
    imports: [{ module: 'env', name: 'does_not_exist', type: { params: [], results: [] } }],
    start: [...op.call(0)],
  });
  const mod = await engine.compile('sha256:missing-import', bytes);
  const run = await runCollect(engine, mod, requestOf('m.wasm'));
  t.is(run.result.reason, 'load');
  t.is(run.result.exitCode, 1);
  t.regex(run.result.message ?? '', /instantiation failed/);
});

test('an unknown wasi_snapshot_preview1 name fails to load too', async (t) => {
  const bytes = buildModule({
    imports: [{ module: 'wasi_snapshot_preview1', name: 'no_such_call', type: { params: [], results: [I32] } }],
    start: [...op.call(0), ...op.drop],
  });
  const run = await runCollect(engine, await engine.compile('sha256:bad-wasi', bytes), requestOf('m.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode], ['load', 1]);
});

test('unimplemented WASI calls are provided and return ENOSYS (52)', async (t) => {
  const bytes = buildModule({
    imports: [
      { module: 'wasi_snapshot_preview1', name: 'sock_accept', type: { params: [I32, I32, I32], results: [I32] } },
      { module: 'wasi_snapshot_preview1', name: 'proc_exit', type: { params: [I32], results: [] } },
    ],
    memory: { min: 1 },
    start: [...op.i32(3), ...op.i32(0), ...op.i32(0), ...op.call(0), ...op.call(1)],
  });
  const run = await runCollect(engine, await engine.compile('sha256:enosys', bytes), requestOf('m.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 52]);
});

test('kill(grace) ends a spinning instance with killed, 134, after the grace', async (t) => {
  const mod = await compileExample('spin');
  const run = await runCollect(engine, mod, requestOf('spin.wasm'), (instance) => {
    setTimeout(() => instance.kill(150), 50);
  });
  t.is(run.result.reason, 'killed');
  t.is(run.result.exitCode, 134);
  t.true(run.result.stats.wallMs >= 200);
});

test('kill with a grace lets an instance that ends in time finish normally', async (t) => {
  const run = await runCollect(engine, await compileExample('hello'), requestOf('hello.wasm'), (instance) =>
    instance.kill(10_000),
  );
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 0]);
  t.is(run.stdout, 'hello from wasm\n');
});

test('kill() without grace ends at once, with the output already written', async (t) => {
  const mod = await engine.compile('sha256:print-then-spin-2', printThenSpin('before kill\n'));
  let stdout = '';
  const instance = engine.run(mod, requestOf('p.wasm'), {
    // Killed from the first chunk: the module is then provably past its write and spinning.
    onStdout: (chunk) => {
      stdout += new TextDecoder().decode(chunk);
      instance.kill();
    },
    onStderr: () => {},
  });
  const result = await instance.result;
  t.deepEqual([result.reason, result.exitCode], ['killed', 134]);
  t.is(stdout, 'before kill\n');
});

test('stdout and stderr chunks keep their relative order', async (t) => {
  // fsprobe prints the usage line on stderr; hello prints on stdout: one module writing both is fsprobe on error.
  const mod = await compileExample('fsprobe');
  const run = await runCollect(engine, mod, requestOf('fsprobe.wasm', { args: ['bogus'] }));
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 1]);
  t.is(run.stderr, 'usage: fsprobe read PATH | write PATH TEXT | ls DIR\n');
  // Interleaving is checked with a module that alternates fd 1 and fd 2.
  const iov = (ptr: number, len: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, ptr, true);
    new DataView(b.buffer).setUint32(4, len, true);
    return b;
  };
  const write = (fd: number, iovAt: number) => [...op.i32(fd), ...op.i32(iovAt), ...op.i32(1), ...op.i32(200), ...op.call(0), ...op.drop];
  const bytes = buildModule({
    imports: [{ module: 'wasi_snapshot_preview1', name: 'fd_write', type: { params: [I32, I32, I32, I32], results: [I32] } }],
    memory: { min: 1 },
    data: [
      { offset: 0, bytes: iov(100, 2) },
      { offset: 8, bytes: iov(102, 2) },
      { offset: 100, bytes: new TextEncoder().encode('o1e1') },
    ],
    start: [...write(1, 0), ...write(2, 8), ...write(1, 0), ...write(2, 8)],
  });
  const mixed = await runCollect(engine, await engine.compile('sha256:interleave', bytes), requestOf('m.wasm'));
  t.deepEqual(mixed.order, [
    { fd: 1, text: 'o1' },
    { fd: 2, text: 'e1' },
    { fd: 1, text: 'o1' },
    { fd: 2, text: 'e1' },
  ]);
});

test('many runs in a row on a small pool all produce exact output (worker reuse is clean)', async (t) => {
  const local = new V8Engine({ poolSize: 1 });
  t.teardown(() => local.close());
  const hello = await local.compile('h', exampleBytes('hello'));
  const trap = await local.compile('t', exampleBytes('trap'));
  for (let i = 0; i < 12; i++) {
    const run = await runCollect(local, i % 3 === 2 ? trap : hello, requestOf('x.wasm', { args: [`#${i}`] }));
    if (i % 3 === 2) t.deepEqual([run.result.reason, run.stdout], ['trap', 'about to trap\n']);
    else t.deepEqual([run.result.exitCode, run.stdout], [0, `hello from wasm\n#${i}\n`]);
  }
});

test('compile classifies modules and refuses garbage with AGT_ERR_RUN_LOAD', async (t) => {
  t.is((await compileExample('calc')).kind, 'reactor');
  t.is((await engine.compile('sha256:lib', buildModule({ memory: { min: 1 } }))).kind, 'library');
  const err = await t.throwsAsync(engine.compile('sha256:junk', new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 9])));
  t.true(err instanceof AgentError);
  t.is((err as AgentError).code, 'AGT_ERR_RUN_LOAD');
  t.regex(err?.message ?? '', /sha256:junk/);
});

test('running a reactor, a forgotten digest or after close resolves with load, never throws', async (t) => {
  const calc = await compileExample('calc');
  const reactor = await runCollect(engine, calc, requestOf('calc.wasm'));
  t.deepEqual([reactor.result.reason, reactor.result.exitCode], ['load', 1]);

  const local = new V8Engine({ poolSize: 0 });
  const hello = await local.compile('h', exampleBytes('hello'));
  local.forget('h');
  t.is((await runCollect(local, hello, requestOf('h.wasm'))).result.reason, 'load');
  await local.close();
  t.is((await runCollect(local, hello, requestOf('h.wasm'))).result.reason, 'load');
});

test('close() kills running instances', async (t) => {
  const local = new V8Engine({ poolSize: 0 });
  const spin = await local.compile('s', exampleBytes('spin'));
  const running = local.run(spin, requestOf('s.wasm'), { onStdout: () => {}, onStderr: () => {} });
  await new Promise((r) => setTimeout(r, 100));
  await local.close();
  const result = await running.result;
  t.deepEqual([result.reason, result.exitCode], ['killed', 134]);
});

test('limitMemoryPages lowers or adds a maximum and leaves lower ones alone', (t) => {
  const noMax = buildModule({ memory: { min: 2 } });
  const limited = limitMemoryPages(noMax, 10);
  t.true(limited.ok && limited.changed);
  if (limited.ok) t.deepEqual(declaredMemories(limited.bytes), [{ min: 2, max: 10 }]);

  const lowMax = buildModule({ memory: { min: 1, max: 4 } });
  const same = limitMemoryPages(lowMax, 10);
  t.true(same.ok && !same.changed);

  const highMax = limitMemoryPages(buildModule({ memory: { min: 1, max: 300 } }), 200);
  t.true(highMax.ok && highMax.changed);
  if (highMax.ok) t.deepEqual(declaredMemories(highMax.bytes), [{ min: 1, max: 200 }]);

  const tooBig = limitMemoryPages(buildModule({ memory: { min: 300 } }), 200);
  t.false(tooBig.ok);

  t.deepEqual(limitMemoryPages(buildModule({}), 5), { ok: true, bytes: buildModule({}), changed: false });
});

test('a module that catches the proc_exit sentinel (wasm exception handling) is still ended with its exit code', async (t) => {
  const local = new V8Engine({ poolSize: 0, endingGraceMs: 100 });
  t.teardown(() => local.close());
  // try { proc_exit(5) } catch_all {} ; loop forever
  const bytes = buildModule({
    imports: [{ module: 'wasi_snapshot_preview1', name: 'proc_exit', type: { params: [I32], results: [] } }],
    memory: { min: 1 },
    start: [0x06, 0x40, ...op.i32(5), ...op.call(0), 0x19, 0x0b, ...op.spin],
  });
  const mod = await local.compile('catcher', bytes);
  const run = await runCollect(local, mod, requestOf('c.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 5]);
  t.true(run.result.stats.wallMs < 5000);
});

test('proc_exit codes are reported as a process would see them (low 8 bits)', async (t) => {
  const exitWith = (code: number) =>
    buildModule({
      imports: [{ module: 'wasi_snapshot_preview1', name: 'proc_exit', type: { params: [I32], results: [] } }],
      memory: { min: 1 },
      start: [...op.i32(code), ...op.call(0)],
    });
  const plain = await runCollect(engine, await engine.compile('sha256:exit-42', exitWith(42)), requestOf('e.wasm'));
  t.deepEqual([plain.result.reason, plain.result.exitCode, plain.result.message], ['exit', 42, undefined]);
  const wide = await runCollect(engine, await engine.compile('sha256:exit-257', exitWith(257)), requestOf('e.wasm'));
  t.deepEqual([wide.result.reason, wide.result.exitCode, wide.result.message], ['exit', 1, 'proc_exit(257)']);
});
