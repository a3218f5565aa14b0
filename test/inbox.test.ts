import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalSystem } from '../agent/src/launch/index.js';
import { api, waitFor } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';

// The inbox: NAME.wasm dropped or replaced in a watched directory is checked and hot-deployed as app NAME.

const SETTLE_MS = 300;
const hello = fs.readFileSync(example('hello'));
const helloV2 = fs.readFileSync(example('hello', 'hello-v2'));
const calc = fs.readFileSync(example('calc'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-test-'));
const inbox = path.join(dir, 'inbox');
const config = path.join(dir, 'agent.json');
fs.writeFileSync(config, JSON.stringify({ inbox: { dir: inbox, settleMs: SETTLE_MS } }));
const sys = new LocalSystem({ transport: 'ring', dir, agentArgs: ['--config', config] });

test.before(async () => {
  await sys.start();
});
test.after.always(async () => {
  await sys.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Delivers a file the recommended way: written under a scratch name, then renamed into place. */
function dropAtomically(name: string, bytes: Buffer | string): void {
  const tmp = path.join(inbox, `.${name}.part`);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, path.join(inbox, name));
}

async function app(name: string): Promise<{ status: string; digest: string; generation: number } | undefined> {
  const r = await api(sys, 'GET', `/v1/apps/${name}`);
  return r.status === 200 ? r.json() : undefined;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = (await api(sys, 'GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test.serial('drop: NAME.wasm with a NAME.json sidecar becomes app NAME, running', async (t) => {
  dropAtomically('greeter.json', JSON.stringify({ args: ['from', 'inbox'], env: { GREETING: 'inbox' } }));
  dropAtomically('greeter.wasm', hello);
  const a = await waitFor('greeter running', async () => ((await app('greeter'))?.status === 'running' ? app('greeter') : undefined), 10_000);
  t.is(a!.generation, 1);
  t.is((await api(sys, 'POST', '/v1/apps/greeter/invoke', { body: '' })).text, 'hello from wasm\nfrom\ninbox\nGREETING=inbox\n');
  t.is((await api(sys, 'GET', '/v1/modules/greeter')).status, 200, 'stored under its name too');
  dropAtomically('calc.wasm', calc);
  await waitFor('calc running', async () => (await app('calc'))?.status === 'running', 10_000);
  t.deepEqual((await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [20, 22] } })).json().results, [{ type: 'i32', value: 42 }]);
});

test.serial('replace: a new NAME.wasm hot-swaps the app to the new version', async (t) => {
  const before = (await app('greeter'))!;
  dropAtomically('greeter.wasm', helloV2);
  const after = await waitFor('greeter swapped', async () => {
    const a = await app('greeter');
    return a && a.digest !== before.digest && a.status === 'running' ? a : undefined;
  }, 10_000);
  t.is(after.generation, before.generation + 1);
  t.is((await api(sys, 'POST', '/v1/apps/greeter/invoke', { body: '' })).text, 'hello from wasm v2\nfrom\ninbox\nGREETING=inbox\n');
});

test.serial('partial write: a module written in place in pauses shorter than settleMs is deployed once, whole', async (t) => {
  const rejectedBefore = await metric('wasmedge_agent_inbox_files_total', 'result="rejected"');
  const file = path.join(inbox, 'slow.wasm');
  const fd = fs.openSync(file, 'w');
  const step = Math.ceil(hello.length / 6);
  for (let off = 0; off < hello.length; off += step) {
    fs.writeSync(fd, hello.subarray(off, Math.min(off + step, hello.length)));
    await new Promise((r) => setTimeout(r, SETTLE_MS / 3));
  }
  fs.closeSync(fd);
  const a = await waitFor('slow running', async () => ((await app('slow'))?.status === 'running' ? app('slow') : undefined), 10_000);
  t.is(a!.generation, 1, 'deployed once');
  await new Promise((r) => setTimeout(r, SETTLE_MS * 2));
  t.is((await app('slow'))!.generation, 1, 'and not again');
  t.is(await metric('wasmedge_agent_inbox_files_total', 'result="rejected"'), rejectedBefore, 'no half file was ever checked and rejected');
  t.false(fs.existsSync(path.join(inbox, 'rejected', 'slow.wasm')));
});

test.serial('scratch names (dot-files, .part, .tmp, ~) are never picked up', async (t) => {
  for (const f of ['.hidden.wasm', 'half.wasm.part', 'half.wasm.tmp', 'edit.wasm~']) fs.writeFileSync(path.join(inbox, f), hello);
  await new Promise((r) => setTimeout(r, SETTLE_MS * 3));
  const names = ((await api(sys, 'GET', '/v1/apps')).json().apps as Array<{ name: string }>).map((a) => a.name);
  for (const n of ['.hidden', 'hidden', 'half', 'edit', 'half.wasm']) t.false(names.includes(n), n);
  for (const f of ['.hidden.wasm', 'half.wasm.part', 'half.wasm.tmp', 'edit.wasm~']) t.true(fs.existsSync(path.join(inbox, f)), `${f} left alone`);
});

test.serial('invalid: a malformed module, a bad sidecar and a bad name go to rejected/ with a reason beside them', async (t) => {
  dropAtomically('broken.wasm', Buffer.concat([hello.subarray(0, 100)]));
  dropAtomically('badopts.json', JSON.stringify({ args: ['ok'], limits: { timeMs: 'soon' } }));
  dropAtomically('badopts.wasm', hello);
  dropAtomically('bad name.wasm', hello);
  const rejected = path.join(inbox, 'rejected');
  await waitFor('three reasons', () => ['broken', 'badopts', 'bad name'].every((n) => fs.existsSync(path.join(rejected, `${n}.reason.json`))), 10_000);
  const broken = JSON.parse(fs.readFileSync(path.join(rejected, 'broken.reason.json'), 'utf8'));
  t.is(broken.code, 'AGT_ERR_WASM_MALFORMED');
  t.is(broken.file, 'broken.wasm');
  t.truthy(broken.rejectedAt);
  const badopts = JSON.parse(fs.readFileSync(path.join(rejected, 'badopts.reason.json'), 'utf8'));
  t.is(badopts.code, 'AGT_ERR_BAD_REQUEST');
  t.is(badopts.details.field, 'limits.timeMs');
  t.is(JSON.parse(fs.readFileSync(path.join(rejected, 'bad name.reason.json'), 'utf8')).code, 'AGT_ERR_NAME_INVALID');
  // The files moved, sidecar included; nothing was deployed.
  for (const f of ['broken.wasm', 'badopts.wasm', 'badopts.json', 'bad name.wasm']) {
    t.false(fs.existsSync(path.join(inbox, f)), `${f} moved out`);
    t.true(fs.existsSync(path.join(rejected, f)), `${f} in rejected/`);
  }
  for (const n of ['broken', 'badopts']) t.is((await api(sys, 'GET', `/v1/apps/${n}`)).status, 404);
  // A fixed file dropped again is deployed.
  dropAtomically('broken.wasm', hello);
  await waitFor('broken fixed and running', async () => (await app('broken'))?.status === 'running', 10_000);
  t.pass();
});

test.serial('after an agent restart the inbox files already deployed are not deployed again', async (t) => {
  const before = (await app('greeter'))!;
  await sys.killAgent('SIGTERM');
  await sys.startAgent();
  await new Promise((r) => setTimeout(r, SETTLE_MS * 3));
  const after = await waitFor('greeter listed', () => app('greeter'), 5000);
  t.is(after.generation, before.generation);
  t.is(after.digest, before.digest);
  t.is(after.status, 'running');
});
