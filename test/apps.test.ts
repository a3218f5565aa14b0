import test from 'ava';
import fs from 'node:fs';
import type { AppOptions } from '../runner-proto/src/protocol/index.js';
import { bigModule } from './helpers/modules.js';
import { example } from './helpers/paths.js';
import { digestOf, startRunner, type RunnerUnderTest } from './helpers/runner-process.js';

const calc = fs.readFileSync(example('calc'));
// The same code under another digest: a second version to swap to.
const calcV2 = bigModule(calc, 16);
const echo = fs.readFileSync(example('echo'));
// (module (import "env" "missing" (func)) (func (export "_initialize")) (func (export "f") (result i32) i32.const 1))
const badReactor = Buffer.from('0061736d010000000108026000006000017f020f0103656e76076d697373696e67000003030200010713020b5f696e697469616c697a650001016600020a090202000b040041010b', 'hex');

const opts = (o: Partial<AppOptions> = {}): AppOptions => ({ args: [], env: {}, preopens: [], limits: {}, pool: { min: 1, max: 2, idleMs: 60_000 }, ...o });

let rt: RunnerUnderTest;
test.before(async () => {
  rt = await startRunner();
});
test.after.always(async () => {
  await rt?.stop();
});

test.serial('reactor: typed calls with i32, i64, f32, f64 arguments and results, state kept between calls', async (t) => {
  const digest = await rt.put(calc);
  const d = await rt.link.deploy({ app: 'calc', digest, kind: 'reactor', options: opts() });
  t.is(d.previous, null);
  t.true(d.warmed >= 1);
  const call = (fn: string, args: Array<{ type: 'i32' | 'i64' | 'f32' | 'f64'; value: number | string }>) =>
    rt.link.call({ app: 'calc', fn, args: args as never });
  const add = await call('add', [{ type: 'i32', value: 2 }, { type: 'i32', value: 40 }]);
  t.true(add.ok);
  t.deepEqual(add.ok && add.results, [{ type: 'i32', value: 42 }]);
  const m = await call('mul64', [{ type: 'i64', value: '4294967296' }, { type: 'i64', value: '-3' }]);
  t.true(m.ok && m.results[0]!.type === 'i64' && m.results[0]!.value === '-12884901888');
  const f = await call('fdiv', [{ type: 'f64', value: 1 }, { type: 'f64', value: 8 }]);
  t.true(f.ok && f.results[0]!.value === 0.125);
  const s = await call('scale', [{ type: 'f32', value: 1.5 }, { type: 'f32', value: 2 }]);
  t.true(s.ok && s.results[0]!.type === 'f32' && s.results[0]!.value === 3);
  const fib = await call('fib', [{ type: 'i32', value: 20 }]);
  t.true(fib.ok && fib.results[0]!.value === 6765);
  const c1 = await call('counter', []);
  const c2 = await call('counter', []);
  t.true(c1.ok && c2.ok && (c2.results[0]!.value as number) === (c1.results[0]!.value as number) + 1, 'warm instance keeps its state');
});

test.serial('a bad call (unknown function, wrong argument types) is refused without killing the app', async (t) => {
  const a = await rt.link.call({ app: 'calc', fn: 'nope', args: [] });
  t.false(a.ok);
  const b = await rt.link.call({ app: 'calc', fn: 'add', args: [{ type: 'f64', value: 1 }] });
  t.false(b.ok);
  const ok = await rt.link.call({ app: 'calc', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 1 }] });
  t.true(ok.ok);
});

test.serial('hot swap under a steady load of calls: zero calls fail and new calls reach the new version', async (t) => {
  let stop = false;
  let failed = 0;
  let done = 0;
  const loops = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const r = await rt.link.call({ app: 'calc', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 2 }] }).catch(() => undefined);
      if (!r || !r.ok || r.results[0]!.value !== 3) failed++;
      done++;
    }
  });
  await new Promise((r) => setTimeout(r, 200));
  const digest2 = await rt.put(calcV2);
  const d = await rt.link.deploy({ app: 'calc', digest: digest2, kind: 'reactor', options: opts() });
  t.not(d.previous, null);
  t.is(d.digest, digest2);
  await new Promise((r) => setTimeout(r, 200));
  stop = true;
  await Promise.all(loops);
  t.is(failed, 0, `${failed} of ${done} calls failed`);
  t.true(done > 100, `${done} calls during the swap`);
  const apps = await rt.link.apps();
  t.is(apps.find((a) => a.app === 'calc')!.digest, digest2);
});

test.serial('a version B that fails to instantiate leaves A serving', async (t) => {
  const before = (await rt.link.apps()).find((a) => a.app === 'calc')!.digest;
  const bad = await rt.put(badReactor);
  await t.throwsAsync(rt.link.deploy({ app: 'calc', digest: bad, kind: 'reactor', options: opts() }), { code: 'AGT_ERR_RUN_LOAD' } as never);
  t.is((await rt.link.apps()).find((a) => a.app === 'calc')!.digest, before);
  const r = await rt.link.call({ app: 'calc', fn: 'add', args: [{ type: 'i32', value: 5 }, { type: 'i32', value: 6 }] });
  t.true(r.ok && r.results[0]!.value === 11);
});

test.serial('a call over its time limit ends that instance (timeout, 134); the app keeps answering', async (t) => {
  const r = await rt.link.call({ app: 'calc', fn: 'fib', args: [{ type: 'i32', value: 2_000_000_000 }], limits: { timeMs: 100 } });
  t.false(r.ok);
  t.true(!r.ok && r.reason === 'timeout' && r.exitCode === 134);
  const ok = await rt.link.call({ app: 'calc', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 1 }] });
  t.true(ok.ok);
});

test.serial('bytes in, bytes out: a command app reads the request on stdin and answers on stdout', async (t) => {
  const digest = await rt.put(echo);
  await rt.link.deploy({ app: 'upper', digest, kind: 'command', options: opts({ pool: { min: 0, max: 4, idleMs: 1000 } }) });
  const r = await rt.link.invoke('upper', Buffer.from('hello, seL4!'));
  t.is(Buffer.from(r.stdout).toString(), 'HELLO, SEL4!');
  t.is(r.head.exitCode, 0);
  t.is(r.head.reason, 'exit');
});

test.serial('scale to zero: with min 0 an idle reactor pool drops its instances; the next call is a cold start', async (t) => {
  const digest = await rt.put(calc);
  await rt.link.deploy({ app: 'calc0', digest, kind: 'reactor', options: opts({ pool: { min: 0, max: 2, idleMs: 200 } }) });
  const first = await rt.link.call({ app: 'calc0', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 1 }] });
  t.true(first.ok);
  const warm = await rt.link.call({ app: 'calc0', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 1 }] });
  t.is(warm.stats.start, 'warm');
  await new Promise((r) => setTimeout(r, 1500));
  t.is((await rt.link.apps()).find((a) => a.app === 'calc0')!.instances, 0, 'scaled to zero');
  const cold = await rt.link.call({ app: 'calc0', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 1 }] });
  t.true(cold.ok);
  t.is(cold.stats.start, 'cold');
});

test.serial('undeploy removes the app', async (t) => {
  t.true(await rt.link.undeploy('calc0'));
  await t.throwsAsync(rt.link.call({ app: 'calc0', fn: 'add', args: [] }), { code: 'AGT_ERR_NOT_FOUND' } as never);
});

test.serial('deployModule sends a new module and its DEPLOY back to back; a held one is not sent again; damaged bytes fail', async (t) => {
  const m = bigModule(echo, 150 * 1024);
  const digest = digestOf(m);
  const options = opts({ pool: { min: 0, max: 2, idleMs: 1000 } });
  const first = await rt.link.deployModule({ app: 'piped', digest, kind: 'command', options }, async () => m, { bytes: m });
  t.true(first.sent);
  t.is(first.result.app, 'piped');
  t.is(Buffer.from((await rt.link.invoke('piped', Buffer.from('pipe'))).stdout).toString(), 'PIPE');
  const again = await rt.link.deployModule({ app: 'piped2', digest, kind: 'command', options }, async () => m, { bytes: m });
  t.false(again.sent, 'held: nothing sent');
  // Bytes that do not hash to the digest: the pipelined transfer fails, the ordinary path retries, then gives up.
  const other = bigModule(echo, 1000);
  const wrong = digestOf(bigModule(echo, 2000));
  await t.throwsAsync(rt.link.deployModule({ app: 'piped3', digest: wrong, kind: 'command', options }, async () => other, { bytes: other, deadlineMs: 2000 }), {
    code: 'AGT_ERR_DIGEST_MISMATCH',
  } as never);
  t.false((await rt.link.apps()).some((a) => a.app === 'piped3'));
});

test.serial('sendAhead starts a transfer its later DEPLOY rides on; bytes withdrawn with forgetModule are gone from the runner', async (t) => {
  const options = opts({ pool: { min: 0, max: 2, idleMs: 1000 } });
  const m = bigModule(echo, 120 * 1024);
  const digest = digestOf(m);
  t.true(rt.link.sendAhead(digest, m));
  t.false(rt.link.sendAhead(digest, m), 'one transfer per digest at a time');
  // No bytes given: the DEPLOY can only ride on the transfer already under way (load() would fail the test).
  const r = await rt.link.deployModule({ app: 'ahead', digest, kind: 'command', options }, () => Promise.reject(new Error('loaded again')));
  t.true(r.sent);
  t.is(Buffer.from((await rt.link.invoke('ahead', Buffer.from('ahead'))).stdout).toString(), 'AHEAD');
  t.false(rt.link.sendAhead(digest, m), 'held: nothing to send');

  // Sent ahead, then refused by the agent's check: withdrawn, and not to be deployed by digest afterwards.
  const refused = bigModule(echo, 130 * 1024);
  const refusedDigest = digestOf(refused);
  t.true(rt.link.sendAhead(refusedDigest, refused));
  await rt.link.forgetModule(refusedDigest);
  t.false(await rt.link.holds(refusedDigest));
  t.true(await rt.link.holds(digest));
  await t.throwsAsync(rt.link.deploy({ app: 'refused', digest: refusedDigest, kind: 'command', options }), { code: 'AGT_ERR_NOT_FOUND' } as never);
});

test.serial('a command module received is warmed once arrivals pause: its first run after that is warm', async (t) => {
  const m = bigModule(fs.readFileSync(example('hello')), 5000);
  const digest = await rt.put(m);
  await new Promise((r) => setTimeout(r, 400));
  let out = '';
  const run = await rt.link.run({ digest, argv0: 'hello.wasm', args: [], env: {} }, { onStdout: (c) => (out += Buffer.from(c).toString()), onStderr: () => undefined });
  const exit = await run.exit;
  t.is(exit.exitCode, 0);
  t.regex(out, /hello from wasm/);
  t.is(exit.stats.start, 'warm');
});
