import test from 'ava';
import fs from 'node:fs';
import { LocalSystem } from '../agent/src/launch/index.js';
import { api } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';

// Apps through the HTTP API against a real runner and agent over /dev/shm: deploy, hot swap, failed swap,
// call, invoke, stop/start/undeploy, pins, and the validation of every body.

const sys = new LocalSystem({ transport: 'ring' });
const hello = fs.readFileSync(example('hello'));
const helloV2 = fs.readFileSync(example('hello', 'hello-v2'));
const calc = fs.readFileSync(example('calc'));

test.before(async () => {
  await sys.start();
});
test.after.always(async () => {
  await sys.stop();
});

function deployBytes(name: string, bytes: Buffer, spec: object = {}) {
  return api(sys, 'PUT', `/v1/apps/${name}`, { body: bytes, headers: { 'content-type': 'application/wasm', 'x-app-spec': JSON.stringify(spec) } });
}

test.serial('deploy from bytes: checked, stored under the app name, running; invoke runs it', async (t) => {
  const r = await deployBytes('hello', hello, { args: ['one'], env: { GREETING: 'hi' } });
  t.is(r.status, 201, r.text);
  const d = r.json();
  t.true(d.applied);
  t.false(d.unchanged);
  t.true(d.transferred);
  t.is(d.kind, 'command');
  t.is(d.previous, null);
  const app = (await api(sys, 'GET', '/v1/apps/hello')).json();
  t.is(app.status, 'running');
  t.is(app.runner.digest, d.digest);
  t.deepEqual(app.options.args, ['one']);
  const mod = (await api(sys, 'GET', '/v1/modules/hello')).json();
  t.is(mod.digest, d.digest);
  const inv = await api(sys, 'POST', '/v1/apps/hello/invoke', { body: '' });
  t.is(inv.status, 200);
  t.is(inv.text, 'hello from wasm\none\nGREETING=hi\n');
  t.is(inv.headers['x-exit-code'], '0');
  t.is(inv.headers['x-exit-reason'], 'exit');
});

test.serial('hot swap to v2 keeps the options; the same deploy again changes nothing; restart forces one', async (t) => {
  const r = await deployBytes('hello', helloV2);
  t.is(r.status, 200, r.text);
  const d = r.json();
  t.true(d.applied);
  t.not(d.previous, d.digest);
  t.is((await api(sys, 'POST', '/v1/apps/hello/invoke', { body: '' })).text, 'hello from wasm v2\none\nGREETING=hi\n');
  const same = (await deployBytes('hello', helloV2)).json();
  t.true(same.unchanged);
  t.is(same.generation, d.generation);
  const forced = (await deployBytes('hello', helloV2, { restart: true })).json();
  t.false(forced.unchanged);
  t.is(forced.generation, d.generation + 1);
});

test.serial('a version the runner refuses leaves the old one serving and the desired state unchanged', async (t) => {
  const before = (await api(sys, 'GET', '/v1/apps/hello')).json();
  const r = await deployBytes('hello', hello, { engine: 'no-such-engine' });
  t.is(r.status, 422, r.text);
  t.is(r.json().error.code, 'AGT_ERR_RUN_LOAD');
  t.regex(r.json().error.message, /no-such-engine/);
  const after = (await api(sys, 'GET', '/v1/apps/hello')).json();
  t.is(after.digest, before.digest);
  t.is(after.generation, before.generation);
  t.is(after.options.engine, undefined);
  t.is(after.lastError.code, 'AGT_ERR_RUN_LOAD');
  t.is((await api(sys, 'POST', '/v1/apps/hello/invoke', { body: '' })).text, 'hello from wasm v2\none\nGREETING=hi\n');
});

test.serial('reactor: calls typed from the export signature; failures are answers, refusals are errors naming the field', async (t) => {
  const r = await deployBytes('calc', calc, { pool: { min: 1, max: 2 } });
  t.is(r.status, 201, r.text);
  t.is(r.json().kind, 'reactor');
  const add = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [2, 40] } });
  t.is(add.status, 200, add.text);
  t.deepEqual(add.json().results, [{ type: 'i32', value: 42 }]);
  const mul = (await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'mul64', args: ['9007199254740993', 2] } })).json();
  t.deepEqual(mul.results, [{ type: 'i64', value: '18014398509481986' }]);
  const typed = (await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'fdiv', args: [{ type: 'f64', value: 1 }, { type: 'f64', value: 8 }] } })).json();
  t.deepEqual(typed.results, [{ type: 'f64', value: 0.125 }]);

  const arity = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [1] } });
  t.is(arity.status, 400);
  t.is(arity.json().error.details.field, 'args');
  const wrongType = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [1, { type: 'f32', value: 1 }] } });
  t.is(wrongType.json().error.details.field, 'args.1');
  const noFn = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'nope', args: [] } });
  t.is(noFn.status, 404);
  t.regex(noFn.json().error.message, /exports add, mul64/);
  const extra = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [1, 2], bogus: 1 } });
  t.is(extra.status, 400);
  t.regex(extra.json().error.message, /bogus/);
  const invokeReactor = await api(sys, 'POST', '/v1/apps/calc/invoke', { body: '' });
  t.is(invokeReactor.status, 409);
  t.is(invokeReactor.json().error.code, 'AGT_ERR_CONFLICT');
  const callCommand = await api(sys, 'POST', '/v1/apps/hello/call', { body: { fn: '_start', args: [] } });
  t.is(callCommand.status, 409);
});

test.serial('stop keeps the spec, start brings it back, undeploy forgets it (the module stays stored)', async (t) => {
  const stop = await api(sys, 'POST', '/v1/apps/calc/stop');
  t.is(stop.status, 200, stop.text);
  t.is(stop.json().status, 'stopped');
  const status = (await api(sys, 'GET', '/v1/status')).json();
  t.false(status.apps.find((a: { name: string }) => a.name === 'calc').running);
  const call = await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [1, 2] } });
  t.is(call.status, 409);
  t.regex(call.json().error.message, /stopped/);
  const start = await api(sys, 'POST', '/v1/apps/calc/start');
  t.is(start.status, 200, start.text);
  t.deepEqual((await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [1, 2] } })).json().results, [{ type: 'i32', value: 3 }]);
  const del = await api(sys, 'DELETE', '/v1/apps/calc');
  t.is(del.status, 200);
  t.is((await api(sys, 'GET', '/v1/apps/calc')).status, 404);
  t.is((await api(sys, 'GET', '/v1/modules/calc')).status, 200);
});

test.serial('deploy a stored module by name or by digest, with JSON', async (t) => {
  const up = (await api(sys, 'POST', '/v1/modules/calc2', { body: calc })).json();
  const byName = await api(sys, 'PUT', '/v1/apps/c1', { body: { module: 'calc2' } });
  t.is(byName.status, 201, byName.text);
  t.is(byName.json().digest, up.digest);
  const byDigest = await api(sys, 'PUT', '/v1/apps/c2', { body: { module: up.digest, pool: { min: 0, max: 1 } } });
  t.is(byDigest.status, 201, byDigest.text);
  t.deepEqual((await api(sys, 'POST', '/v1/apps/c2/call', { body: { fn: 'fib', args: [10] } })).json().results, [{ type: 'i32', value: 55 }]);
  // Removing the module's name does not pull the bytes from under the apps.
  t.is((await api(sys, 'DELETE', '/v1/modules/calc2')).status, 200);
  const restart = await api(sys, 'PUT', '/v1/apps/c1', { body: { module: up.digest, restart: true } });
  t.is(restart.status, 200, restart.text);
});

test.serial('a pinned app refuses other digests until unpinned', async (t) => {
  const helloDigest = (await deployBytes('pinned', hello)).json().digest;
  const pin = await deployBytes('pinned', hello, { pin: helloDigest });
  t.is(pin.status, 200, pin.text);
  const refused = await deployBytes('pinned', helloV2);
  t.is(refused.status, 422);
  t.is(refused.json().error.code, 'AGT_ERR_DIGEST_MISMATCH');
  t.is(refused.json().error.details.rule, 'pinned-digest');
  t.is((await api(sys, 'GET', '/v1/apps/pinned')).json().digest, helloDigest);
  const unpinned = await deployBytes('pinned', helloV2, { pin: null });
  t.is(unpinned.status, 200, unpinned.text);
  const expected = await deployBytes('pinned', hello, { expectedDigest: `sha256:${'0'.repeat(64)}` });
  t.is(expected.status, 422);
  t.is(expected.json().error.details.field, 'expectedDigest');
});

test.serial('bodies are validated with errors naming the field; preopens are denied by default', async (t) => {
  const cases: Array<[object, string]> = [
    [{ module: 'hello', kind: 'daemon' }, 'kind'],
    [{ module: 'hello', env: { 'A=B': 'x' } }, 'env.A=B'],
    [{ module: 'hello', limits: { timeMs: -1 } }, 'limits.timeMs'],
    [{ module: 'hello', pool: { min: 3, max: 1 } }, 'pool.min'],
    [{ module: 'hello', preopens: [{ guest: '/data', host: '/tmp' }] }, 'preopens.0.host'],
    [{ kind: 'command' }, 'module'],
  ];
  for (const [body, field] of cases) {
    const r = await api(sys, 'PUT', '/v1/apps/bad', { body });
    t.is(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    t.is(r.json().error.details.field, field, JSON.stringify(body));
  }
  const header = await api(sys, 'PUT', '/v1/apps/bad', { body: hello, headers: { 'content-type': 'application/wasm', 'x-app-spec': '{"args": "not a list"}' } });
  t.is(header.status, 400);
  t.regex(header.json().error.message, /header x-app-spec: field args/);
  const notJson = await api(sys, 'PUT', '/v1/apps/bad', { body: '{', headers: { 'content-type': 'application/json' } });
  t.is(notJson.status, 400);
  t.regex(notJson.json().error.message, /not valid JSON/);
  t.is((await api(sys, 'GET', '/v1/apps/bad')).status, 404);
});
