import test from 'ava';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import { LocalSystem } from '../agent/src/launch/index.js';
import { ModuleStore, digestOf } from '../agent/src/store/index.js';
import { DesiredState } from '../agent/src/state/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { api, waitFor } from './helpers/agent-api.js';
import { bigModule } from './helpers/modules.js';
import { example } from './helpers/paths.js';

// kill -9 of the agent at random points during 100 uploads and deploys: the store stays consistent (every
// listed module verifies against its digest), every acknowledged change survives, and the restarted agent
// re-converges the runner to the desired state.

const hello = fs.readFileSync(example('hello'));

/** A valid command module with unique bytes (a random custom section), 1-200 KiB. */
function variant(): Buffer {
  const m = bigModule(hello, randomInt(1024, 200 * 1024));
  randomBytes(32).copy(m, m.length - 32);
  return m;
}

type Outcome = { digest: string; state: 'acked' | 'unknown' };

test('100 uploads and deploys under repeated kill -9 of the agent', async (t) => {
  t.timeout(180_000);
  const sys = new LocalSystem({ transport: 'ring' });
  t.teardown(() => sys.stop());
  await sys.start();
  const modules = new Map<string, Outcome[]>();
  const apps = new Map<string, Outcome[]>();
  let acked = 0;
  let attempts = 0;
  let kills = 0;
  let stop = false;

  const killer = (async () => {
    while (!stop) {
      await new Promise((r) => setTimeout(r, randomInt(50, 400)));
      if (stop) break;
      await sys.killAgent('SIGKILL');
      kills++;
      await sys.startAgent();
    }
  })();

  while (acked < 100) {
    attempts++;
    const bytes = variant();
    const digest = digestOf(bytes);
    const kind = randomInt(0, 3);
    let name: string;
    let book: Map<string, Outcome[]>;
    let send: () => ReturnType<typeof api>;
    if (kind === 0) {
      name = `m-${randomInt(0, 8)}`;
      book = modules;
      send = () => api(sys, 'POST', `/v1/modules/${name}`, { body: bytes, timeoutMs: 10_000 });
    } else {
      name = `app-${randomInt(0, 5)}`;
      book = apps;
      send = () => api(sys, 'PUT', `/v1/apps/${name}`, { body: bytes, headers: { 'content-type': 'application/wasm', 'x-app-spec': JSON.stringify({ args: [digest.slice(7, 15)] }) }, timeoutMs: 10_000 });
    }
    const list = book.get(name) ?? [];
    book.set(name, list);
    let ok = false;
    try {
      const r = await send();
      if (r.status >= 200 && r.status < 300) ok = true;
      else if (r.status !== 503) t.fail(`${name}: unexpected ${r.status} ${r.text}`);
    } catch (err) {
      // Refused or cut by the kill: the change may or may not have happened.
    }
    list.push({ digest, state: ok ? 'acked' : 'unknown' });
    if (ok) acked++;
    else await new Promise((r) => setTimeout(r, 30));
  }
  stop = true;
  await killer;
  t.log(`${acked} acknowledged of ${attempts} attempts, ${kills} kills`);
  t.true(kills >= 5, `only ${kills} kills`);

  // Offline check: the store and the desired state as a restarted agent finds them.
  await sys.killAgent('SIGKILL');
  const log = createLogger('verify', { level: 'silent' });
  const store = await ModuleStore.open(sys.storeDir, { logger: log });
  t.deepEqual(await store.verifyAll(), [], 'store consistent');
  for (const rec of await store.list()) {
    const bytes = await store.get(rec.digest); // re-hashes
    t.is(digestOf(bytes), rec.digest);
  }
  const allowed = (history: Outcome[]): Set<string> => {
    const last = history.map((o) => o.state).lastIndexOf('acked');
    return new Set(history.slice(Math.max(0, last)).map((o) => o.digest));
  };
  for (const [name, history] of modules) {
    const rec = (await store.list()).find((m) => m.name === name);
    if (!history.some((o) => o.state === 'acked')) continue;
    t.truthy(rec, `module ${name} acknowledged but missing`);
    t.true(allowed(history).has(rec!.digest), `module ${name} at an acknowledged (or later) version`);
  }
  const desired = await DesiredState.open(sys.storeDir, log);
  for (const a of desired.list()) t.true(await store.has(a.digest), `app ${a.name}'s module is stored`);
  for (const [name, history] of apps) {
    if (!history.some((o) => o.state === 'acked')) continue;
    const a = desired.get(name);
    t.truthy(a, `app ${name} acknowledged but missing`);
    t.true(allowed(history).has(a!.digest), `app ${name} at an acknowledged (or later) version`);
  }

  // The restarted agent re-converges the runner: every app runs its desired digest and answers.
  await sys.startAgent();
  const names = desired.list().map((a) => a.name);
  await waitFor(
    'every app running its desired version',
    async () => {
      const list = (await api(sys, 'GET', '/v1/apps')).json().apps as Array<{ name: string; status: string }>;
      return list.length === names.length && list.every((a) => a.status === 'running');
    },
    10_000,
  );
  for (const a of desired.list()) {
    const r = await api(sys, 'POST', `/v1/apps/${a.name}/invoke`, { body: '' });
    t.is(r.text, `hello from wasm\n${a.digest.slice(7, 15)}\n`, a.name);
  }
});
