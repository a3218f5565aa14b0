/**
 * The WasmEdge adapter. WasmEdge is not installed here, so:
 * - the flag mapping, log splitting, exit-code classification and value formatting are unit-tested as pure
 *   functions (no process at all);
 * - the adapter is driven end to end against a FAKE `wasmedge` (test/helpers/engine-fake-wasmedge.ts) placed on
 *   PATH by this file: it records its argv and emulates the CLI's exit-code, logging and reactor-output contract.
 *   Passing these tests says the adapter honours that contract; it does not prove real WasmEdge behaves so.
 */
import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  classifyExit,
  createEngine,
  detectEngines,
  formatCliValue,
  LogSplitter,
  parseCliValue,
  parseInstructions,
  type RunRequest,
  WasmEdgeArgsError,
  type WasmEdgeEngine,
  wasmedgeArgs,
} from '../runner-proto/src/engine/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { buildModule, exampleBytes, requestOf, runCollect } from './helpers/engine-wasm.js';

const silent = createLogger('wasmedge-test', { level: 'silent' });
const req = (extra: Partial<RunRequest> = {}): RunRequest => ({ argv0: 'm.wasm', args: [], env: {}, ...extra });

// ---- wasmedgeArgs: the flag mapping ----------------------------------------------------------------------

test('wasmedgeArgs: a bare command is `run FILE`', (t) => {
  t.deepEqual(wasmedgeArgs(req(), { file: '/c/m.wasm', mode: 'command' }), ['run', '/c/m.wasm']);
});

test('wasmedgeArgs: module args follow the file verbatim, flag-like ones included', (t) => {
  t.deepEqual(wasmedgeArgs(req({ args: ['a', '--exit', '3', '-x', ''] }), { file: '/m.wasm', mode: 'command' }), [
    'run',
    '/m.wasm',
    'a',
    '--exit',
    '3',
    '-x',
    '',
  ]);
});

test('wasmedgeArgs: preopens map to --dir guest:host with :readonly', (t) => {
  const argv = wasmedgeArgs(
    req({
      preopens: [
        { guest: '/data', host: '/srv/data', readonly: false },
        { guest: '/etc/app', host: '/opt/app/etc', readonly: true },
        { guest: '.', host: '/tmp/work', readonly: false },
      ],
    }),
    { file: '/m.wasm', mode: 'command' },
  );
  t.deepEqual(argv, ['run', '--dir', '/data:/srv/data', '--dir', '/etc/app:/opt/app/etc:readonly', '--dir', '.:/tmp/work', '/m.wasm']);
});

test('wasmedgeArgs: env maps to repeated --env K=V (values keep = and spaces)', (t) => {
  const argv = wasmedgeArgs(req({ env: { A: '1', GREETING: 'hi there', EQ: 'x=y', EMPTY: '' } }), { file: '/m.wasm', mode: 'command' });
  t.deepEqual(argv, ['run', '--env', 'A=1', '--env', 'GREETING=hi there', '--env', 'EQ=x=y', '--env', 'EMPTY=', '/m.wasm']);
});

test('wasmedgeArgs: limits map to --memory-page-limit, --gas-limit (+ statistics), --time-limit', (t) => {
  const argv = wasmedgeArgs(req({ limits: { memoryPages: 32, gas: 1000, timeMs: 250, outputBytes: 4096 } }), { file: '/m.wasm', mode: 'command' });
  t.deepEqual(argv, ['run', '--memory-page-limit', '32', '--gas-limit', '1000', '--enable-all-statistics', '--time-limit', '250', '/m.wasm']);
});

test('wasmedgeArgs: zero or absent limits add no flags; fractional limits are floored', (t) => {
  t.deepEqual(wasmedgeArgs(req({ limits: { memoryPages: 0, gas: 0, timeMs: 0 } }), { file: '/m.wasm', mode: 'command' }), ['run', '/m.wasm']);
  t.deepEqual(wasmedgeArgs(req({ limits: { timeMs: 10.9 } }), { file: '/m.wasm', mode: 'command' }), ['run', '--time-limit', '10', '/m.wasm']);
});

test('wasmedgeArgs: reactor mode is --reactor FILE FN ARGS, with call limits overriding the request', (t) => {
  const argv = wasmedgeArgs(req({ env: { K: 'v' }, limits: { timeMs: 5000 } }), {
    file: '/m.wasm',
    mode: 'reactor',
    fn: 'add',
    fnArgs: ['2', '-3'],
    limits: { gas: 50 },
  });
  t.deepEqual(argv, ['run', '--env', 'K=v', '--gas-limit', '50', '--enable-all-statistics', '--reactor', '/m.wasm', 'add', '2', '-3']);
});

test('wasmedgeArgs: old CLIs (no `run` subcommand) and extra flags', (t) => {
  t.deepEqual(wasmedgeArgs(req({ args: ['x'] }), { file: '/m.wasm', mode: 'command', subcommand: false, extraFlags: ['--enable-threads'] }), [
    '--enable-threads',
    '/m.wasm',
    'x',
  ]);
});

test('wasmedgeArgs: refuses what the CLI cannot express', (t) => {
  const bad = (r: RunRequest, mode: 'command' | 'reactor' = 'command', fn?: string) =>
    t.throws(() => wasmedgeArgs(r, { file: '/m.wasm', mode, ...(fn !== undefined ? { fn } : {}) }), { instanceOf: WasmEdgeArgsError });
  bad(req({ preopens: [{ guest: '/a:b', host: '/h', readonly: false }] }));
  bad(req({ preopens: [{ guest: '/a', host: 'C:/h', readonly: false }] }));
  bad(req({ preopens: [{ guest: '', host: '/h', readonly: false }] }));
  bad(req({ env: { 'A=B': '1' } }));
  bad(req({ env: { '': '1' } }));
  bad(req({ env: { A: 'x\0y' } }));
  bad(req({ args: ['a\0b'] }));
  bad(req({ limits: { gas: 2 ** 31 } }));
  bad(req({ limits: { memoryPages: 2 ** 31 } }));
  bad(req({ limits: { timeMs: Infinity } }));
  bad(req(), 'reactor');
  bad(req(), 'reactor', '');
});

// ---- output parsing --------------------------------------------------------------------------------------

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('LogSplitter separates spdlog lines from module output, also mid-line and across chunks', (t) => {
  const s = new LogSplitter();
  let out = '';
  out += dec(s.push(enc('hello\npartial')));
  out += dec(s.push(enc('[2024-01-02 03:04:05.6')));
  out += dec(s.push(enc('78] [error] execution failed: unreachable, Code: 0x89\n[2024-01-02 03:04:05.678] [error]     In instruction: unreachable\n')));
  out += dec(s.push(enc('after [brackets] stay\n')));
  out += dec(s.end());
  t.is(out, 'hello\npartialafter [brackets] stay\n');
  t.regex(s.log, /execution failed: unreachable/);
  t.regex(s.log, /In instruction/);
});

test('LogSplitter streams ordinary output at once and only holds a possible marker prefix', (t) => {
  const s = new LogSplitter();
  t.is(dec(s.push(enc('line one\n'))), 'line one\n');
  t.is(dec(s.push(enc('x[20'))), 'x');
  t.is(dec(s.push(enc('x]'))), '[20x]');
  t.is(dec(s.push(enc('[a'))), '[a');
  t.is(dec(s.end()), '');
});

test('LogSplitter keeps bytes that are not UTF-8 intact', (t) => {
  const s = new LogSplitter();
  const bytes = new Uint8Array([0xff, 0x00, 0x80, 0x0a]);
  t.deepEqual([...s.push(bytes)], [...bytes]);
});

test('classifyExit maps the wasmedge exit contract', (t) => {
  t.deepEqual(classifyExit(0, null, '', '', undefined), { reason: 'exit', exitCode: 0 });
  t.deepEqual(classifyExit(3, null, '', '', undefined), { reason: 'exit', exitCode: 3 });
  t.deepEqual(classifyExit(1, null, '', '', undefined), { reason: 'exit', exitCode: 1 });
  const trap = classifyExit(134, null, '[2024-01-01 00:00:00.000] [error] execution failed: unreachable, Code: 0x89\n', '', undefined);
  t.is(trap.reason, 'trap');
  t.is(trap.exitCode, 134);
  t.regex(trap.message ?? '', /unreachable/);
  t.deepEqual(
    [classifyExit(134, null, '[error] execution failed: cost limit exceeded, Code: 0x8b', '', { gas: 10 })].map((v) => [v.reason, v.exitCode]),
    [['gas', 134]],
  );
  t.deepEqual(
    [classifyExit(134, null, '[error] execution failed: interrupted, Code: 0x0e', '', { timeMs: 5 })].map((v) => [v.reason, v.exitCode]),
    [['timeout', 134]],
  );
  const load = classifyExit(1, null, '[error] loading failed: magic header not detected, Code: 0x23', '', undefined);
  t.deepEqual([load.reason, load.exitCode], ['load', 1]);
  t.deepEqual([classifyExit(1, null, '[error] instantiation failed: unknown import, Code: 0x62', '', undefined).reason], ['load']);
  t.deepEqual([classifyExit(1, null, '[error] validation failed: type mismatch', '', undefined).reason], ['load']);
  t.deepEqual([classifyExit(1, null, '', 'A function name is required when reactor mode is enabled.\n', undefined).reason], ['load']);
  // Older CLIs exit 1 after a trap: normalised to 134.
  t.deepEqual([classifyExit(1, null, '[error] execution failed: unreachable', '', undefined)].map((v) => [v.reason, v.exitCode]), [['trap', 134]]);
  t.deepEqual([classifyExit(null, 'SIGSEGV', '', '', undefined)].map((v) => [v.reason, v.exitCode]), [['trap', 134]]);
});

test('parseInstructions reads the statistics block (last count wins)', (t) => {
  const block = (n: number) =>
    `[2021-12-09 16:03:33.261] [info] ====================  Statistics  ====================\n[2021-12-09 16:03:33.261] [info]  Executed wasm instructions count: ${n}\n[2021-12-09 16:03:33.261] [info]  Gas costs: ${n}\n`;
  t.is(parseInstructions(block(20425)), 20425);
  t.is(parseInstructions(block(5) + block(99)), 99);
  t.is(parseInstructions('[info]  Gas costs: 12\n'), 12);
  t.is(parseInstructions('nothing'), undefined);
});

test('formatCliValue / parseCliValue round-trip every type', (t) => {
  t.is(formatCliValue('i32', -5), '-5');
  t.is(formatCliValue('i64', -9223372036854775808n), '-9223372036854775808');
  t.is(formatCliValue('f64', 1 / 3), '0.3333333333333333');
  t.is(formatCliValue('f64', NaN), 'nan');
  t.is(formatCliValue('f64', -Infinity), '-inf');
  t.is(formatCliValue('f64', -0), '-0');
  t.deepEqual(parseCliValue('i32', '4294967295'), { type: 'i32', value: -1 });
  t.deepEqual(parseCliValue('i64', '18446744073709551615'), { type: 'i64', value: '-1' });
  t.deepEqual(parseCliValue('f64', '0.3333333333333333'), { type: 'f64', value: 1 / 3 });
  t.deepEqual(parseCliValue('f32', '0.15'), { type: 'f32', value: Math.fround(0.15) });
  t.deepEqual(parseCliValue('f64', 'inf'), { type: 'f64', value: Infinity });
  t.true(Number.isNaN(parseCliValue('f32', 'nan')?.value as number));
  t.is(parseCliValue('i32', 'abc'), undefined);
  t.is(parseCliValue('f64', '1e+300')?.value, 1e300);
});

// ---- detection without WasmEdge --------------------------------------------------------------------------

test('createEngine("wasmedge") without the CLI throws a clear AgentError', (t) => {
  const err = t.throws(() => createEngine('wasmedge', { binary: '/nonexistent/bin/wasmedge', logger: silent }));
  t.true(err instanceof AgentError);
  t.is((err as AgentError).code, 'AGT_ERR_CONFIG_INVALID');
  t.regex(err?.message ?? '', /WasmEdge CLI.*not on PATH|WasmEdge CLI/);
  t.regex(err?.message ?? '', /--engine v8/);
  const [v8, wasmedge] = detectEngines({ wasmedgeBinary: '/nonexistent/bin/wasmedge' });
  t.deepEqual([v8?.name, v8?.available, wasmedge?.name, wasmedge?.available], ['v8', true, 'wasmedge', false]);
});

// ---- end to end against the fake CLI -------------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url));
const fakeScript = path.join(here, 'helpers', 'engine-fake-wasmedge.js');
const work = mkdtempSync(path.join(tmpdir(), 'fake-wasmedge-'));
const bin = path.join(work, 'bin');
const argvLog = path.join(work, 'argv.jsonl');
mkdirSync(bin);
writeFileSync(path.join(bin, 'wasmedge'), `#!/bin/sh\nexec "${process.execPath}" --no-warnings "${fakeScript}" "$@"\n`);
chmodSync(path.join(bin, 'wasmedge'), 0o755);
// The fake is found the way the real CLI would be: on PATH.
process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;
process.env.FAKE_WASMEDGE_LOG = argvLog;

let engine: WasmEdgeEngine;
test.before(() => {
  // A long backstop: the fake is a Node process whose start-up under a loaded test run can take seconds, and the
  // test wants the CLI's own --time-limit path, not the adapter's backstop kill.
  engine = createEngine('wasmedge', { cacheDir: path.join(work, 'cache'), logger: silent, killGraceMs: 20_000 });
});
test.after.always(async () => {
  await engine?.close();
  rmSync(work, { recursive: true, force: true });
});

/** argv lines the fake recorded whose file is `name`. */
function recorded(name: string): string[][] {
  return readFileSync(argvLog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as string[])
    .filter((a) => a.some((x) => x.endsWith(`/${name}`)));
}

test('fake: detectEngines sees the CLI on PATH and its version', (t) => {
  const found = detectEngines().find((e) => e.name === 'wasmedge');
  t.deepEqual([found?.available, found?.version], [true, '0.14.1']);
  t.is(engine.version, '0.14.1');
});

test('fake: hello runs with args and env, exit code and output come back, argv is mapped', async (t) => {
  const mod = await engine.compile('sha256:hello', exampleBytes('hello'));
  t.is(mod.kind, 'command');
  const run = await runCollect(engine, mod, requestOf('greet.wasm', { args: ['a', 'b c', '--exit', '3'], env: { GREETING: 'hi' } }));
  t.is(run.stdout, 'hello from wasm\na\nb c\nGREETING=hi\n');
  t.deepEqual([run.result.reason, run.result.exitCode], ['exit', 3]);
  t.is(run.result.stats.start, 'cold');
  const argv = recorded('greet.wasm').pop() ?? [];
  t.deepEqual(argv.slice(0, 3), ['run', '--env', 'GREETING=hi']);
  t.regex(argv[3] ?? '', /sha256_hello\/greet\.wasm$/);
  t.deepEqual(argv.slice(4), ['a', 'b c', '--exit', '3']);
});

test('fake: a trap is reason trap, exit 134, and the log line is not module output', async (t) => {
  const run = await runCollect(engine, await engine.compile('sha256:trap', exampleBytes('trap')), requestOf('trap.wasm'));
  t.is(run.stdout, 'about to trap\n');
  t.deepEqual([run.result.reason, run.result.exitCode], ['trap', 134]);
  t.regex(run.result.message ?? '', /unreachable/);
});

test('fake: --time-limit ends spin with reason timeout, 134', async (t) => {
  const run = await runCollect(engine, await engine.compile('sha256:spin', exampleBytes('spin')), requestOf('spin.wasm', { limits: { timeMs: 300 } }));
  t.deepEqual([run.result.reason, run.result.exitCode], ['timeout', 134]);
  t.true(run.result.stats.wallMs >= 300);
  t.true(recorded('spin.wasm').some((a) => a.join(' ').includes('--time-limit 300')), JSON.stringify(recorded('spin.wasm')));
});

test('fake: --gas-limit reports instructions on a normal exit and reason gas when exhausted', async (t) => {
  const mod = await engine.compile('sha256:nbody', exampleBytes('nbody'));
  const ok = await runCollect(engine, mod, requestOf('nbody.wasm', { args: ['1000'], limits: { gas: 2_000_000_000 } }));
  t.is(ok.stdout, '-0.169075164\n-0.169087605\n');
  t.deepEqual([ok.result.reason, ok.result.exitCode], ['exit', 0]);
  t.true((ok.result.stats.instructions ?? 0) > 1_000_000);
  const starved = await runCollect(engine, mod, requestOf('nbody.wasm', { args: ['1000'], limits: { gas: 10_000 } }));
  t.deepEqual([starved.result.reason, starved.result.exitCode], ['gas', 134]);
  t.true(recorded('nbody.wasm').some((a) => a.join(' ').includes('--gas-limit 10000 --enable-all-statistics')));
});

test('fake: a module that fails to instantiate is reason load, exit 1', async (t) => {
  const bytes = buildModule({ imports: [{ module: 'env', name: 'nope', type: { params: [], results: [] } }], start: [0x10, 0x00] });
  const run = await runCollect(engine, await engine.compile('sha256:missing', bytes), requestOf('m.wasm'));
  t.deepEqual([run.result.reason, run.result.exitCode], ['load', 1]);
  t.regex(run.result.message ?? '', /instantiation failed/);
});

test('fake: preopens reach the module through --dir', async (t) => {
  const dir = path.join(work, 'data');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'note.txt'), 'from the host\n');
  const mod = await engine.compile('sha256:fsprobe', exampleBytes('fsprobe'));
  const run = await runCollect(engine, mod, requestOf('fsprobe.wasm', { args: ['read', '/data/note.txt'], preopens: [{ guest: '/data', host: dir, readonly: true }] }));
  t.is(run.stdout, 'from the host\n');
  t.is(run.result.exitCode, 0);
  t.true(recorded('fsprobe.wasm').some((a) => a.includes(`/data:${dir}:readonly`)));
});

test('fake: the output limit is enforced by the adapter (reason output, exactly the limit)', async (t) => {
  const run = await runCollect(engine, await engine.compile('sha256:flood', exampleBytes('flood')), requestOf('flood.wasm', { limits: { outputBytes: 100_000 } }));
  t.deepEqual([run.result.reason, run.result.exitCode], ['output', 134]);
  t.is(run.stdoutBytes, 100_000);
});

test('fake: kill() ends the process with reason killed', async (t) => {
  const mod = await engine.compile('sha256:spin', exampleBytes('spin'));
  const run = await runCollect(engine, mod, requestOf('spin.wasm'), (i) => setTimeout(() => i.kill(), 200));
  t.deepEqual([run.result.reason, run.result.exitCode], ['killed', 134]);
});

test('fake: stdin is piped to the module', async (t) => {
  const run = await runCollect(engine, await engine.compile('sha256:echo', exampleBytes('echo')), requestOf('echo.wasm', { stdin: enc('shout\n') }));
  t.is(run.stdout, 'SHOUT\n');
});

test('fake: reactor calls pass typed args and parse typed results; state does not persist', async (t) => {
  const mod = await engine.compile('sha256:calc', exampleBytes('calc'));
  const calc = await engine.instantiate(mod, requestOf('calc.wasm'), { onStdout: () => {}, onStderr: () => {} });
  const r1 = await calc.call('add', [
    { type: 'i32', value: 2 },
    { type: 'i32', value: -5 },
  ]);
  t.deepEqual(r1.ok ? r1.results : r1, [{ type: 'i32', value: -3 }]);
  const r2 = await calc.call('mul64', [
    { type: 'i64', value: '4294967296' },
    { type: 'i64', value: '-3' },
  ]);
  t.deepEqual(r2.ok ? r2.results : r2, [{ type: 'i64', value: '-12884901888' }]);
  const r3 = await calc.call('fdiv', [
    { type: 'f64', value: 1 },
    { type: 'f64', value: 3 },
  ]);
  t.deepEqual(r3.ok ? r3.results : r3, [{ type: 'f64', value: 1 / 3 }]);
  const r4 = await calc.call('scale', [
    { type: 'f32', value: 1.5 },
    { type: 'f32', value: 0.1 },
  ]);
  t.deepEqual(r4.ok ? r4.results : r4, [{ type: 'f32', value: Math.fround(Math.fround(1.5) * Math.fround(0.1)) }]);
  const c1 = await calc.call('counter', []);
  const c2 = await calc.call('counter', []);
  // One process per call: the counter starts over each time (documented limitation of the CLI adapter).
  t.deepEqual([c1.ok && c1.results[0]?.value, c2.ok && c2.results[0]?.value], [1, 1]);
  const bad = await calc.call('add', [{ type: 'i32', value: 1 }]);
  t.deepEqual([bad.ok, !bad.ok && bad.reason, !bad.ok && bad.exitCode], [false, 'load', 1]);
  t.true(recorded('calc.wasm').some((a) => a.join(' ') === `run --reactor ${a[2]} add 2 -5`));
  await calc.close();
  t.false(calc.alive);
});

test('fake: a reactor call that runs out of gas ends the instance', async (t) => {
  const mod = await engine.compile('sha256:calc', exampleBytes('calc'));
  const calc = await engine.instantiate(mod, requestOf('calc.wasm'), { onStdout: () => {}, onStderr: () => {} });
  const r = await calc.call('fib', [{ type: 'i32', value: 100_000 }], { gas: 1000 });
  t.deepEqual([r.ok, !r.ok && r.reason, !r.ok && r.exitCode], [false, 'gas', 134]);
  t.false(calc.alive);
  const after = await calc.call('add', [
    { type: 'i32', value: 1 },
    { type: 'i32', value: 1 },
  ]);
  t.deepEqual([after.ok, !after.ok && after.reason], [false, 'killed']);
});

test.serial('fake: an old CLI version is driven without the `run` subcommand', async (t) => {
  process.env.FAKE_WASMEDGE_VERSION = '0.11.2';
  try {
    const old = createEngine('wasmedge', { cacheDir: path.join(work, 'cache-old'), logger: silent });
    const mod = await old.compile('sha256:hello-old', exampleBytes('hello'));
    const run = await runCollect(old, mod, requestOf('old.wasm'));
    t.is(run.stdout, 'hello from wasm\n');
    t.not(recorded('old.wasm').pop()?.[0], 'run');
    await old.close();
  } finally {
    delete process.env.FAKE_WASMEDGE_VERSION;
  }
});

test.serial('fake: a CLI that ignores --time-limit is killed by the adapter backstop (timeout, 134)', async (t) => {
  process.env.FAKE_WASMEDGE_IGNORE_TIME_LIMIT = '1';
  try {
    const strict = createEngine('wasmedge', { cacheDir: path.join(work, 'cache-strict'), logger: silent, killGraceMs: 300 });
    const mod = await strict.compile('sha256:spin-strict', exampleBytes('spin'));
    const run = await runCollect(strict, mod, requestOf('spin.wasm', { limits: { timeMs: 200 } }));
    t.deepEqual([run.result.reason, run.result.exitCode], ['timeout', 134]);
    t.true(run.result.stats.wallMs >= 500);
    await strict.close();
  } finally {
    delete process.env.FAKE_WASMEDGE_IGNORE_TIME_LIMIT;
  }
});
