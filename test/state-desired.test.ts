import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DesiredState, deployFingerprint, stateFileSchema, type AppSpec } from '../agent/src/state/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';

const log = createLogger('test', { level: 'silent' });
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'agent-state-crash-child.js');
const D1 = `sha256:${'11'.repeat(32)}`;
const D2 = `sha256:${'22'.repeat(32)}`;

function spec(name: string, digest = D1, generation = 1): AppSpec {
  return {
    name,
    digest,
    kind: 'reactor',
    options: { args: [], env: { A: '1' }, preopens: [], limits: { timeMs: 100 }, pool: { min: 1, max: 2, idleMs: 1000 } },
    autostart: true,
    running: true,
    generation,
    updatedAt: new Date().toISOString(),
  };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'state-'));
}

test('put and remove are durable: a reopened state holds exactly what was acknowledged', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  await ds.put(spec('b', D2));
  await ds.put({ ...spec('a', D2, 2) });
  t.true(await ds.remove('b'));
  t.false(await ds.remove('nope'));
  const again = await DesiredState.open(dir, log);
  t.deepEqual(again.list().map((a) => [a.name, a.digest, a.generation]), [['a', D2, 2]]);
  t.deepEqual([...again.digests()], [D2]);
  const file = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'apps.json'), 'utf8'));
  t.true(stateFileSchema.safeParse(file).success);
  t.is(file.version, 1);
});

test('concurrent puts share writes (group commit) and all resolve durable', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ds = await DesiredState.open(dir, log);
  await Promise.all(Array.from({ length: 50 }, (_, i) => ds.put(spec(`app-${i}`))));
  t.true(ds.writes < 50, `50 puts took ${ds.writes} writes`);
  t.is((await DesiredState.open(dir, log)).list().length, 50);
});

test('markApplied is written lazily and never ahead of a put', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  ds.markApplied('a', 1);
  ds.markApplied('ghost', 3);
  t.is(ds.appliedGeneration('a'), 1);
  t.is(ds.appliedGeneration('ghost'), undefined);
  await ds.close();
  const again = await DesiredState.open(dir, log);
  t.is(again.appliedGeneration('a'), 1);
});

test('a damaged state file stops the agent with a clear message instead of forgetting every app', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'state'));
  fs.writeFileSync(path.join(dir, 'state', 'apps.json'), '{"version":1,"apps":[{"name":"../x"}],"applied":{}}');
  const e = await t.throwsAsync(DesiredState.open(dir, log));
  t.true(e instanceof AgentError);
  t.is((e as AgentError).code, 'AGT_ERR_STORE_IO');
  t.regex(e!.message, /apps\.json is damaged \(field apps\.0\.name/);
  t.regex(e!.message, /restore it from a backup or move it away/);
});

test('leftover temporaries of a crashed write are swept at open', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  fs.writeFileSync(path.join(dir, 'state', '.apps.json.tmp-123-abc'), '{"half":');
  await DesiredState.open(dir, log);
  t.deepEqual(fs.readdirSync(path.join(dir, 'state')), ['apps.json']);
});

test('the fingerprint ignores key order and undefined fields but sees every option', (t) => {
  const a = spec('a');
  const reordered = { ...a, options: { pool: a.options.pool, limits: a.options.limits, preopens: [], env: { A: '1' }, args: [] } };
  t.is(deployFingerprint(a), deployFingerprint(reordered));
  t.not(deployFingerprint(a), deployFingerprint({ ...a, options: { ...a.options, env: { A: '2' } } }));
  t.not(deployFingerprint(a), deployFingerprint({ ...a, kind: 'command' }));
  t.not(deployFingerprint(a), deployFingerprint({ ...a, digest: D2 }));
});

test('kill -9 at random points while writing: the file always parses and holds every acknowledged change', async (t) => {
  const dir = tmpdir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Map<string, string>();
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child not ready: ${err}`)), 15_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    let inFlight: string | undefined;
    for (const line of out.split('\n')) {
      const b = /^begin (\S+)$/.exec(line);
      if (b) inFlight = b[1];
      const m = /^acked (\S+) (\S+)$/.exec(line);
      if (m) {
        acked.set(m[1]!, m[2]!);
        inFlight = undefined;
      }
    }
    const ds = await DesiredState.open(dir, log);
    // Every acknowledged change is there; the one change in flight at the kill may or may not be.
    for (const [name, what] of acked) {
      if (name === inFlight) continue;
      const a = ds.get(name);
      if (what === 'removed') t.is(a, undefined, `${name} removed`);
      else t.is(a?.generation, Number(what), `${name} at generation ${what}`);
    }
    t.deepEqual(fs.readdirSync(path.join(dir, 'state')), ['apps.json'].filter((f) => fs.existsSync(path.join(dir, 'state', f))));
  }
});
