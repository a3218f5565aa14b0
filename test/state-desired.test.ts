import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DesiredState, SLOT_HEADER_BYTES, deployFingerprint, scanSlots, stateFileSchema, type AppSpec } from '../agent/src/state/index.js';
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

/** A fresh state directory, removed when the test ends. */
function tmpdir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The JSON of the newest intact copy in a state directory's apps.state. */
function stateJson(dir: string): unknown {
  const scan = scanSlots(fs.readFileSync(path.join(dir, 'state', 'apps.state')));
  if (!scan.newest) throw new Error(`no intact copy: ${scan.problems.join(', ')}`);
  return JSON.parse(scan.newest.payload.toString('utf8'));
}

test('put and remove are durable: a reopened state holds exactly what was acknowledged', async (t) => {
  const dir = tmpdir(t);
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  await ds.put(spec('b', D2));
  await ds.put({ ...spec('a', D2, 2) });
  t.true(await ds.remove('b'));
  t.false(await ds.remove('nope'));
  const again = await DesiredState.open(dir, log);
  t.deepEqual(again.list().map((a) => [a.name, a.digest, a.generation]), [['a', D2, 2]]);
  t.deepEqual([...again.digests()], [D2]);
  const file = stateJson(dir) as { version: number };
  t.true(stateFileSchema.safeParse(file).success);
  t.is(file.version, 1);
});

test('concurrent puts share writes (group commit) and all resolve durable', async (t) => {
  const dir = tmpdir(t);
  const ds = await DesiredState.open(dir, log);
  await Promise.all(Array.from({ length: 50 }, (_, i) => ds.put(spec(`app-${i}`))));
  t.true(ds.writes < 50, `50 puts took ${ds.writes} writes`);
  t.is((await DesiredState.open(dir, log)).list().length, 50);
});

test('markApplied is written lazily and never ahead of a put', async (t) => {
  const dir = tmpdir(t);
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
  const dir = tmpdir(t);
  fs.mkdirSync(path.join(dir, 'state'));
  fs.writeFileSync(path.join(dir, 'state', 'apps.json'), '{"version":1,"apps":[{"name":"../x"}],"applied":{}}');
  const e = await t.throwsAsync(DesiredState.open(dir, log));
  t.true(e instanceof AgentError);
  t.is((e as AgentError).code, 'AGT_ERR_STORE_IO');
  t.regex(e!.message, /apps\.json is damaged \(field apps\.0\.name/);
  t.regex(e!.message, /restore it from a backup or move it away/);
});

test('leftover temporaries of a crashed write are swept at open', async (t) => {
  const dir = tmpdir(t);
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  fs.writeFileSync(path.join(dir, 'state', '.apps.json.tmp-123-abc'), '{"half":');
  fs.writeFileSync(path.join(dir, 'state', '.apps.state.tmp-123-abc'), 'WBSTATE1');
  await DesiredState.open(dir, log);
  t.deepEqual(fs.readdirSync(path.join(dir, 'state')), ['apps.state']);
});

/** Offsets of both slots (the file is two equal halves). */
function slots(file: string): [number, number] {
  const size = fs.statSync(file).size;
  return [0, size / 2];
}

test('each write goes to the other slot; a torn write in one slot leaves the previous copy in the other', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'state', 'apps.state');
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a', D1, 1)); // creates the file: slot 0, seq 1
  await ds.put(spec('a', D2, 2)); // slot 1, seq 2
  await ds.close();
  const before = scanSlots(fs.readFileSync(file));
  t.deepEqual([before.newest?.slot, before.newest?.seq, before.problems], [1, 2, [undefined, undefined]]);
  // A power cut in the middle of the newest copy: its header survived, the tail of its payload did not.
  const [, second] = slots(file);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0x20), 0, 64, second + SLOT_HEADER_BYTES + 10);
  fs.closeSync(fd);
  const again = await DesiredState.open(dir, log);
  t.is(again.get('a')?.digest, D1, 'the older intact copy is used');
  t.is(again.get('a')?.generation, 1);
  // The next write goes over the torn slot, never over the intact one.
  await again.put(spec('a', D2, 3));
  await again.close();
  const after = scanSlots(fs.readFileSync(file));
  t.deepEqual([after.newest?.slot, after.newest?.seq, after.problems], [1, 2, [undefined, undefined]]);
  t.is((await DesiredState.open(dir, log)).get('a')?.generation, 3);
});

test('a header torn mid-write and a never-written slot are told apart from damage', (t) => {
  const whole = Buffer.alloc(2 * 16384);
  const scan = scanSlots(whole);
  t.deepEqual(scan.problems, ['empty', 'empty']);
  whole.write('WBSTATE1 seq=00000000000000', 0, 'latin1');
  t.is(scanSlots(whole).problems[0], 'no valid header');
  t.regex(scanSlots(Buffer.alloc(5000)).problems[0]!, /not two slots/);
});

test('both copies damaged: open refuses with an error naming the file and each slot', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'state', 'apps.state');
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  await ds.put(spec('b'));
  await ds.close();
  const fd = fs.openSync(file, 'r+');
  for (const off of slots(file)) fs.writeSync(fd, Buffer.from('XX'), 0, 2, off + SLOT_HEADER_BYTES + 3);
  fs.closeSync(fd);
  const e = await t.throwsAsync(DesiredState.open(dir, log));
  t.true(e instanceof AgentError);
  t.is((e as AgentError).code, 'AGT_ERR_STORE_IO');
  t.is((e as AgentError).details.path, file);
  t.is((e as AgentError).details.rule, 'state-format');
  t.true(e!.message.includes(`desired state ${file} is damaged`), e!.message);
  t.regex(e!.message, /slot 0: checksum mismatch.*slot 1: checksum mismatch/);
  t.regex(e!.message, /restore it from a backup or move it away/);
});

test('a state that outgrows its slots moves to a larger file and stays durable', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'state', 'apps.state');
  const ds = await DesiredState.open(dir, log);
  await ds.put(spec('a'));
  const small = fs.statSync(file).size;
  const big = (i: number): AppSpec => ({ ...spec(`big-${i}`), options: { ...spec('x').options, args: ['y'.repeat(4000)] } });
  for (let i = 0; i < 20; i++) await ds.put(big(i));
  await ds.put(spec('a', D2, 2));
  await ds.close();
  t.true(fs.statSync(file).size > small, 'the file grew');
  const again = await DesiredState.open(dir, log);
  t.is(again.list().length, 21);
  t.is(again.get('a')?.digest, D2);
  t.deepEqual(fs.readdirSync(path.join(dir, 'state')), ['apps.state']);
});

test('apps.json of earlier versions is imported once, kept as apps.json.imported, and later changes win', async (t) => {
  const dir = tmpdir(t);
  fs.mkdirSync(path.join(dir, 'state'));
  const legacy = { version: 1, apps: [spec('old', D1, 4)], applied: { old: 4 } };
  fs.writeFileSync(path.join(dir, 'state', 'apps.json'), JSON.stringify(legacy, null, 1));
  const ds = await DesiredState.open(dir, log);
  t.is(ds.get('old')?.generation, 4);
  t.is(ds.appliedGeneration('old'), 4);
  t.deepEqual(fs.readdirSync(path.join(dir, 'state')).sort(), ['apps.json.imported', 'apps.state']);
  t.deepEqual(stateJson(dir), legacy);
  await ds.put(spec('old', D2, 5));
  await ds.close();
  const again = await DesiredState.open(dir, log);
  t.is(again.get('old')?.generation, 5, 'the import is not repeated');
  // An apps.json put back by hand (a restore) replaces the state again, even over a damaged apps.state.
  fs.writeFileSync(path.join(dir, 'state', 'apps.state'), Buffer.alloc(32768, 0x41));
  fs.writeFileSync(path.join(dir, 'state', 'apps.json'), JSON.stringify({ version: 1, apps: [spec('restored')], applied: {} }));
  const restored = await DesiredState.open(dir, log);
  t.deepEqual(restored.list().map((a) => a.name), ['restored']);
  t.is((await DesiredState.open(dir, log)).get('restored')?.name, 'restored');
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
  const dir = tmpdir(t);
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    // 'close', not 'exit': 'exit' may come before the last of the child's output has been read, and a missing
    // tail would both hide acknowledgements and blame the wrong change as the one in flight.
    const closed = new Promise<NodeJS.Signals | null>((r) => child.once('close', (_code, signal) => r(signal)));
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
    t.is(await closed, 'SIGKILL', `the writer died before the kill: ${err}`);
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
    // What a failure needs to be diagnosed: which copy was read, what the other slot held, the writer's last words.
    const scan = scanSlots(fs.readFileSync(path.join(dir, 'state', 'apps.state')));
    const context = `round ${round}, read slot ${scan.newest?.slot} seq ${scan.newest?.seq}, problems ${JSON.stringify(scan.problems)}, in flight ${inFlight}, output tail ${JSON.stringify(out.slice(-120))}`;
    // Every acknowledged change is there; the one change in flight at the kill may or may not be.
    for (const [name, what] of acked) {
      if (name === inFlight) continue;
      const a = ds.get(name);
      if (what === 'removed') t.is(a, undefined, `${name} removed (found generation ${a?.generation}; ${context})`);
      else t.is(a?.generation, Number(what), `${name} at generation ${what} (${context})`);
    }
    t.deepEqual(fs.readdirSync(path.join(dir, 'state')), ['apps.state'].filter((f) => fs.existsSync(path.join(dir, 'state', f))));
  }
});
