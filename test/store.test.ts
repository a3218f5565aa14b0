import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentError, type ErrorCode } from '../runner-proto/src/errors/index.js';
import {
  ModuleStore,
  digestOf,
  formatDigest,
  parseDigest,
  validateName,
  NAME_MAX_LENGTH,
  type ModuleStoreOptions,
} from '../agent/src/store/index.js';

const CHILD = fileURLToPath(new URL('./helpers/store-crash-child.js', import.meta.url));

async function tempRoot(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'store-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'store');
}

async function openTemp(t: ExecutionContext, options: ModuleStoreOptions = {}): Promise<ModuleStore> {
  return ModuleStore.open(await tempRoot(t), options);
}

async function rejectsWith(t: ExecutionContext, work: Promise<unknown> | (() => unknown), code: ErrorCode, message?: RegExp): Promise<AgentError> {
  const promise = typeof work === 'function' ? Promise.resolve().then(work) : work;
  const err = await t.throwsAsync(promise);
  if (!(err instanceof AgentError)) {
    t.fail(`expected AgentError ${code}, got ${String(err)}`);
    throw err;
  }
  t.is(err.code, code, err.message);
  if (message) t.regex(err.message, message);
  return err;
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const tmpEntries = (root: string): Promise<string[]> => readdir(join(root, 'tmp'));
const blobEntries = (root: string): Promise<string[]> => readdir(join(root, 'blobs', 'sha256'));
/** Blobs still carrying the owner-execute bit: written in place and not (yet) sealed. */
async function unsealedBlobs(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await blobEntries(root)) if (((await stat(join(root, 'blobs', 'sha256', e))).mode & 0o100) !== 0) out.push(e);
  return out;
}

test('a blob is written in place and sealed; open() keeps a whole unsealed blob and deletes a partial one', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(50_000);
  const { digest } = await store.put(bytes);
  // The seal (clearing the execute bit) follows the put off its path; it lands within a few thread-pool turns.
  for (let i = 0; i < 100 && (await unsealedBlobs(store.root)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(await unsealedBlobs(store.root), []);
  t.deepEqual(await tmpEntries(store.root), [], 'no temporary file on the way');
  // What a crash mid-write leaves: unsealed files at their final names, one whole, one cut short.
  const whole = randomBytes(30_000);
  const cut = randomBytes(30_000);
  const dir = join(store.root, 'blobs', 'sha256');
  await writeFile(join(dir, parseDigest(digestOf(whole)).hex), whole, { mode: 0o744 });
  await writeFile(join(dir, parseDigest(digestOf(cut)).hex), cut.subarray(0, 12_345), { mode: 0o744 });
  const again = await ModuleStore.open(store.root);
  t.deepEqual(await unsealedBlobs(store.root), []);
  t.deepEqual((await blobEntries(store.root)).sort(), [parseDigest(digest).hex, parseDigest(digestOf(whole)).hex].sort());
  t.deepEqual(await again.get(digestOf(whole)), whole);
  t.false(await again.has(digestOf(cut)));
  t.deepEqual(await again.verifyAll(), []);
  // The bytes cut short can be stored again.
  t.true((await again.put(cut)).created);
  t.deepEqual(await again.get(digestOf(cut)), cut);
});

test('a blob being written is absent to readers until it is durable', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(256 * 1024);
  const digest = digestOf(bytes);
  const put = store.put(bytes);
  // Whatever point the write has reached, a reader sees the whole blob or none.
  const seen: boolean[] = [];
  for (let i = 0; i < 20; i++) {
    const has = await store.has(digest);
    seen.push(has);
    if (has) t.deepEqual(await store.get(digest), bytes);
    else await rejectsWith(t, store.get(digest), 'AGT_ERR_NOT_FOUND');
    t.deepEqual(await store.verifyAll(), []);
  }
  await put;
  t.true(await store.has(digest));
  t.deepEqual(await store.get(digest), bytes);
});

test('a store on a memory file system (tmpfs) works the same with its inline file calls', async (t) => {
  const dir = await mkdtemp('/dev/shm/wasm-bridge-store-test-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = await ModuleStore.open(join(dir, 'store'));
  const bytes = randomBytes(70_000);
  const { blob, named } = store.putNamed(bytes, 'shm', { kind: 'command' }, digestOf(bytes));
  t.true((await blob).created);
  t.like(await named, { name: 'shm', digest: digestOf(bytes), size: 70_000 });
  t.false((await store.put(bytes)).created);
  const reopened = await ModuleStore.open(join(dir, 'store'));
  t.deepEqual(await reopened.get(digestOf(bytes)), bytes);
  t.deepEqual(await reopened.verifyAll(), []);
  t.deepEqual(await unsealedBlobs(join(dir, 'store')), []);
});

test('put then get returns the same bytes under their sha256', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(10_000);
  const result = await store.put(bytes);
  t.deepEqual(result, { digest: digestOf(bytes), size: 10_000, created: true });
  t.regex(result.digest, /^sha256:[0-9a-f]{64}$/);
  t.true(await store.has(result.digest));
  t.is(basename(store.blobPath(result.digest)), parseDigest(result.digest).hex);
  t.deepEqual(await store.get(result.digest), bytes);
  t.deepEqual(await tmpEntries(store.root), []);
});

test('putStream hashes while spooling and stores the same blob put() would', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(100_000);
  const result = await store.putStream(chunked(bytes, 4096), { expectedDigest: digestOf(bytes) });
  t.deepEqual(result, { digest: digestOf(bytes), size: bytes.length, created: true });
  t.deepEqual(await store.get(result.digest), bytes);
  t.false((await store.put(bytes)).created);
});

test('re-putting stored bytes is idempotent and leaves the file untouched', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(1000);
  const first = await store.put(bytes);
  const before = await stat(store.blobPath(first.digest));
  await new Promise((r) => setTimeout(r, 30));
  t.deepEqual(await store.put(bytes), { ...first, created: false });
  t.deepEqual(await store.putStream(chunked(bytes, 100)), { ...first, created: false });
  const after = await stat(store.blobPath(first.digest));
  t.is(after.mtimeMs, before.mtimeMs);
  t.is(after.ino, before.ino);
  t.deepEqual(await tmpEntries(store.root), []);
});

test('concurrent identical uploads create the blob exactly once', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(200_000);
  const results = await Promise.all([
    ...Array.from({ length: 4 }, () => store.put(bytes)),
    ...Array.from({ length: 4 }, () => store.putStream(chunked(bytes, 8192))),
  ]);
  t.is(results.filter((r) => r.created).length, 1);
  t.true(results.every((r) => r.digest === digestOf(bytes)));
  t.deepEqual(await blobEntries(store.root), [parseDigest(digestOf(bytes)).hex]);
  t.deepEqual(await tmpEntries(store.root), []);
});

test('an expectedDigest mismatch stores nothing', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(500);
  const other = digestOf(randomBytes(500));
  await rejectsWith(t, store.put(bytes, { expectedDigest: other }), 'AGT_ERR_DIGEST_MISMATCH', new RegExp(`expected ${other}`));
  await rejectsWith(t, store.putStream(chunked(bytes, 64), { expectedDigest: other }), 'AGT_ERR_DIGEST_MISMATCH');
  await rejectsWith(t, store.put(bytes, { expectedDigest: 'md5:abc' }), 'AGT_ERR_BAD_REQUEST', /algorithm "md5"/);
  t.false(await store.has(digestOf(bytes)));
  t.deepEqual(await blobEntries(store.root), []);
  t.deepEqual(await tmpEntries(store.root), []);
  t.true((await store.put(bytes, { expectedDigest: digestOf(bytes) })).created);
});

test('putStream over its limit stores nothing and leaves tmp/ empty', async (t) => {
  const store = await openTemp(t, { maxModuleBytes: 64 * 1024 });
  const bytes = randomBytes(10_000);
  await rejectsWith(t, store.putStream(chunked(bytes, 1000), { maxBytes: 9_999 }), 'AGT_ERR_TOO_LARGE', /at least 10000 bytes; expected at most 9999 \(maxBytes\)/);
  const big = randomBytes(100_000);
  await rejectsWith(t, store.putStream(chunked(big, 4096)), 'AGT_ERR_TOO_LARGE', /expected at most 65536 \(maxModuleBytes\)/);
  await rejectsWith(t, store.put(big), 'AGT_ERR_TOO_LARGE', /module is 100000 bytes; expected at most 65536/);
  t.deepEqual(await blobEntries(store.root), []);
  t.deepEqual(await tmpEntries(store.root), []);
  t.true((await store.putStream(chunked(bytes, 1000), { maxBytes: 10_000 })).created);
});

test('putStream stops reading once over the limit and removes its temp file when the source fails', async (t) => {
  const store = await openTemp(t);
  let pulled = 0;
  async function* endless(): AsyncGenerator<Uint8Array> {
    for (;;) {
      pulled++;
      yield new Uint8Array(1024);
    }
  }
  await rejectsWith(t, store.putStream(endless(), { maxBytes: 4096 }), 'AGT_ERR_TOO_LARGE');
  t.is(pulled, 5);
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(10);
    throw new Error('socket closed');
  }
  await t.throwsAsync(store.putStream(broken()), { message: 'socket closed' });
  t.deepEqual(await tmpEntries(store.root), []);
  t.deepEqual(await blobEntries(store.root), []);
});

test('validateName rejects unsafe names with the offending character and position', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['a/b', /"\/" at index 1/],
    ['../etc', /"\/" at index 2/],
    ['ok..no', /"\.\." at index 2/],
    ['..', /starts with "\."/],
    ['', /empty/],
    ['x'.repeat(NAME_MAX_LENGTH + 1), /129 characters long; expected at most 128/],
    ['nul\0byte', /"\\u0000" at index 3/],
    ['back\\slash', /"\\\\" at index 4/],
    ['-dash', /starts with "-"/],
    ['spa ce', /" " at index 3/],
    ['émile', /"é" at index 0/],
    [42, /must be a string, received number/],
  ];
  for (const [name, message] of cases) {
    const err = await rejectsWith(t, () => validateName(name), 'AGT_ERR_NAME_INVALID');
    t.regex(err.message, message, `for ${JSON.stringify(name)}`);
  }
  for (const ok of ['a', 'hello-world_1.2', 'A'.repeat(NAME_MAX_LENGTH), '9.x', 'v1.0.0']) t.is(validateName(ok), ok);
});

test('store operations refuse invalid names before touching the disk', async (t) => {
  const store = await openTemp(t);
  const { digest } = await store.put(randomBytes(10));
  for (const bad of ['../escape', 'a/b', '', 'x\0']) {
    await rejectsWith(t, store.setName(bad, digest), 'AGT_ERR_NAME_INVALID');
    await rejectsWith(t, store.resolve(bad), 'AGT_ERR_NAME_INVALID');
    await rejectsWith(t, store.remove(bad), 'AGT_ERR_NAME_INVALID');
  }
  t.deepEqual(await readdir(join(store.root, 'names')), []);
});

test('every accepted name is a plain single path segment', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 140 }), fc.stringMatching(/^[A-Za-z0-9._\-/\\]{0,20}$/)), (name) => {
      let accepted: boolean;
      try {
        validateName(name);
        accepted = true;
      } catch (err) {
        if (!(err instanceof AgentError) || err.code !== 'AGT_ERR_NAME_INVALID') throw err;
        accepted = false;
      }
      if (accepted) {
        return basename(name) === name && !name.includes('..') && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name);
      }
      return true;
    }),
  );
  t.pass();
});

test('parseDigest accepts only sha256:<64 lowercase hex> and formatDigest inverts it', async (t) => {
  const hex = 'ab'.repeat(32);
  t.deepEqual(parseDigest(`sha256:${hex}`), { algorithm: 'sha256', hex });
  t.is(formatDigest(hex), `sha256:${hex}`);
  await rejectsWith(t, () => parseDigest(hex), 'AGT_ERR_BAD_REQUEST', /no "sha256:" prefix/);
  await rejectsWith(t, () => parseDigest(`sha256:${hex.toUpperCase()}`), 'AGT_ERR_BAD_REQUEST', /"A" at index 7.*uppercase/);
  await rejectsWith(t, () => parseDigest('sha256:abc'), 'AGT_ERR_BAD_REQUEST', /3 characters long; expected 64/);
  await rejectsWith(t, () => parseDigest(`sha512:${hex}`), 'AGT_ERR_BAD_REQUEST', /"sha512" is not supported/);
  await rejectsWith(t, () => parseDigest(null), 'AGT_ERR_BAD_REQUEST', /received null/);
  await rejectsWith(t, () => formatDigest('zz'), 'AGT_ERR_BAD_REQUEST');
});

test('resolve finds a module by name and by digest', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(300);
  const { digest } = await store.put(bytes);
  const record = await store.setName('hello', digest, { kind: 'command' });
  t.like(record, { name: 'hello', digest, size: 300, meta: { kind: 'command' } });
  t.is(record.createdAt, record.updatedAt);
  t.deepEqual(await store.resolve('hello'), record);
  t.deepEqual(await store.resolve(digest), { digest, size: 300 });
  await rejectsWith(t, store.resolve('nope'), 'AGT_ERR_NOT_FOUND', /no module named "nope"/);
  await rejectsWith(t, store.resolve(digestOf(randomBytes(3))), 'AGT_ERR_NOT_FOUND');
  await rejectsWith(t, store.setName('ghost', digestOf(randomBytes(3))), 'AGT_ERR_NOT_FOUND', /put\(\) the module first/);
  await rejectsWith(t, store.setName('x', digest, [] as never), 'AGT_ERR_BAD_REQUEST', /meta must be a JSON object, received an array/);
  await rejectsWith(t, store.setName('x', digest, { blob: 'x'.repeat(5000) }), 'AGT_ERR_TOO_LARGE', /meta is \d+ bytes/);
});

test('re-pointing a name keeps createdAt, replaces meta and detaches it from the caller', async (t) => {
  const store = await openTemp(t);
  const a = await store.put(randomBytes(10));
  const b = await store.put(randomBytes(20));
  const meta = { kind: 'reactor', tags: ['x'] };
  const first = await store.setName('app', a.digest, meta);
  meta.tags.push('mutated');
  await new Promise((r) => setTimeout(r, 5));
  const second = await store.setName('app', b.digest);
  t.is(second.createdAt, first.createdAt);
  t.not(second.updatedAt, first.updatedAt);
  t.is(second.size, 20);
  t.is(second.meta, undefined);
  t.deepEqual(first.meta, { kind: 'reactor', tags: ['x'] });
  t.true(Object.isFrozen(first) && Object.isFrozen(first.meta));
});

test('concurrent setName calls on one name leave a single well-formed record', async (t) => {
  const store = await openTemp(t);
  const puts = await Promise.all(Array.from({ length: 8 }, (_, i) => store.put(randomBytes(100 + i))));
  const records = await Promise.all(puts.map((p, i) => store.setName('race', p.digest, { i })));
  const final = await store.resolve('race');
  t.deepEqual(final, records[records.length - 1]);
  t.deepEqual(await store.verifyAll(), []);
  t.deepEqual(await tmpEntries(store.root), []);
});

test('list returns records sorted by name', async (t) => {
  const store = await openTemp(t);
  const { digest } = await store.put(randomBytes(1));
  for (const name of ['zeta', 'Alpha', 'beta', '1st']) await store.setName(name, digest);
  t.deepEqual((await store.list()).map((r) => r.name), ['1st', 'Alpha', 'beta', 'zeta']);
});

test('remove drops the name and gc collects blobs no name references', async (t) => {
  const store = await openTemp(t);
  const shared = await store.put(randomBytes(100));
  const lonely = await store.put(randomBytes(100));
  await store.setName('one', shared.digest);
  await store.setName('two', shared.digest);
  await store.setName('three', lonely.digest);

  const three = await store.resolve('three');
  t.deepEqual(await store.remove('three'), { removed: three, collected: [lonely.digest] });
  t.false(await store.has(lonely.digest));
  t.deepEqual((await store.remove('one')).collected, []);
  t.true(await store.has(shared.digest));
  t.deepEqual((await store.remove('two')).collected, [shared.digest]);
  t.deepEqual(await blobEntries(store.root), []);
  await rejectsWith(t, store.remove('two'), 'AGT_ERR_NOT_FOUND');
  t.deepEqual(await store.list(), []);
});

test('gc spares a fresh unnamed upload during its grace period', async (t) => {
  const root = await tempRoot(t);
  const patient = await ModuleStore.open(root);
  const pending = await patient.put(randomBytes(50));
  t.deepEqual(await patient.gc(), []);
  t.true(await patient.has(pending.digest));

  const eager = await ModuleStore.open(root, { unnamedGraceMs: 0 });
  const orphan = await eager.put(randomBytes(50));
  t.deepEqual((await eager.gc()).sort(), [orphan.digest, pending.digest].sort());
});

test('reopening the store after a restart keeps blobs, names and meta', async (t) => {
  const root = await tempRoot(t);
  const first = await ModuleStore.open(root);
  const bytes = randomBytes(4096);
  const { digest } = await first.put(bytes);
  const record = await first.setName('persisted', digest, { kind: 'reactor', limits: { pages: 16 } });

  const second = await ModuleStore.open(root);
  t.deepEqual(await second.resolve('persisted'), record);
  t.deepEqual(await second.get(digest), bytes);
  t.deepEqual(await second.list(), [record]);
  t.false((await second.put(bytes)).created);
  t.deepEqual(await second.verifyAll(), []);
});

test('a blob corrupted on disk is caught by get and verifyAll', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(2048);
  const { digest } = await store.put(bytes);
  await store.setName('victim', digest);
  const flipped = Buffer.from(bytes);
  flipped[1000] = (flipped[1000] ?? 0) ^ 0xff;
  await writeFile(store.blobPath(digest), flipped);

  await rejectsWith(t, store.get(digest), 'AGT_ERR_DIGEST_MISMATCH', new RegExp(`expected ${digest}.*corrupted on disk`));
  const problems = await store.verifyAll();
  t.is(problems.length, 1);
  t.like(problems[0], { kind: 'digest-mismatch', digest, path: store.blobPath(digest) });
});

test('verifyAll reports dangling names, damaged records and stray files', async (t) => {
  const store = await openTemp(t);
  const { digest } = await store.put(randomBytes(64));
  await store.setName('dangling', digest);
  await store.setName('short', digest);
  await rm(store.blobPath(digest));
  const other = await store.put(randomBytes(64));
  await store.setName('sized', other.digest);
  const sized = JSON.parse(await readFile(join(store.root, 'names', 'sized.json'), 'utf8')) as { size: number };
  await writeFile(join(store.root, 'names', 'sized.json'), JSON.stringify({ ...sized, size: 1 }));
  await writeFile(join(store.root, 'names', 'broken.json'), '{"name": "broken", "digest": ');
  await writeFile(join(store.root, 'names', 'README'), 'hi');
  await writeFile(join(store.root, 'blobs', 'sha256', 'not-a-digest'), 'x');

  const problems = await store.verifyAll();
  const summary = problems.map((p) => `${p.kind}:${p.name ?? basename(p.path)}`).sort();
  t.deepEqual(summary, ['bad-record:broken', 'missing-blob:dangling', 'missing-blob:short', 'size-mismatch:sized', 'stray-file:README', 'stray-file:not-a-digest']);
  t.deepEqual((await store.list()).map((r) => r.name), ['dangling', 'short', 'sized']);
  await rejectsWith(t, store.resolve('broken'), 'AGT_ERR_STORE_IO', /damaged/);
  // With a record it cannot read, gc refuses to guess what is unreferenced.
  const unnamed = await ModuleStore.open(store.root, { unnamedGraceMs: 0 });
  await unnamed.put(randomBytes(8));
  t.deepEqual((await unnamed.remove('dangling')).collected, []);
  t.is((await blobEntries(store.root)).length, 3);
});

test('open removes stale files left in tmp/ by a crash', async (t) => {
  const root = await tempRoot(t);
  const store = await ModuleStore.open(root);
  const { digest } = await store.put(randomBytes(10));
  await writeFile(join(root, 'tmp', 'blob-1234-deadbeef'), randomBytes(1000));
  await writeFile(join(root, 'tmp', 'name-1234-cafe'), '{"name":');
  await mkdir(join(root, 'tmp', 'odd-dir'));
  await writeFile(join(root, 'tmp', 'odd-dir', 'f'), 'x');

  const reopened = await ModuleStore.open(root);
  t.deepEqual(await tmpEntries(root), []);
  t.true(await reopened.has(digest));
});

test('ModuleStore.open validates its options', async (t) => {
  const root = await tempRoot(t);
  await rejectsWith(t, ModuleStore.open(root, { maxModuleBytes: 0 }), 'AGT_ERR_CONFIG_INVALID', /maxModuleBytes must be a positive integer, received 0/);
  await rejectsWith(t, ModuleStore.open(''), 'AGT_ERR_CONFIG_INVALID');
  await rejectsWith(t, ModuleStore.open(root, { unnamedGraceMs: -1 }), 'AGT_ERR_CONFIG_INVALID');
});

test('SIGKILL at random moments never leaves a name on a missing or partial blob', async (t) => {
  const root = await tempRoot(t);
  const kills = 20;
  let dirtyTmp = 0;
  let unsealed = 0;
  let namesSeen = 0;
  for (let round = 0; round < kills; round++) {
    const child = spawn(process.execPath, [CHILD, root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      void exited.then(() => reject(new Error(`child exited before ready: ${stderr}`)));
    });
    await new Promise((r) => setTimeout(r, randomInt(5, 61)));
    child.kill('SIGKILL');
    const { code, signal } = await exited;
    t.is(signal, 'SIGKILL', `round ${round}: child ended on its own (code ${code}): ${stderr}`);

    if ((await tmpEntries(root)).length > 0) dirtyTmp++;
    if ((await unsealedBlobs(root)).length > 0) unsealed++;
    const store = await ModuleStore.open(root);
    t.deepEqual(await tmpEntries(root), [], `round ${round}: tmp/ not cleaned`);
    t.deepEqual(await unsealedBlobs(root), [], `round ${round}: an unsealed blob survived open()`);
    t.deepEqual(await store.verifyAll(), [], `round ${round}: store inconsistent`);
    for (const record of await store.list()) {
      const bytes = await store.get(record.digest);
      t.is(bytes.length, record.size, `round ${round}: ${record.name} is partial`);
      t.true(typeof record.meta?.kind === 'string');
      namesSeen++;
    }
  }
  t.log(`${kills} kills; ${dirtyTmp} left debris in tmp/, ${unsealed} an unsealed blob; ${namesSeen} name checks`);
  t.true(namesSeen > 0, 'the child never got as far as naming a module');
});

test('putNamed stores the blob and names it; the name never precedes the blob; refusals leave nothing', async (t) => {
  const store = await openTemp(t);
  const bytes = randomBytes(4096);
  const { blob, named } = store.putNamed(bytes, 'both', { kind: 'command' });
  const put = await blob;
  t.true(put.created);
  const record = await named;
  t.like(record, { name: 'both', digest: put.digest, size: 4096, meta: { kind: 'command' } });
  t.deepEqual(await store.resolve('both'), record);
  // Again, same bytes: the blob exists; the record is rewritten and keeps createdAt.
  const again = store.putNamed(bytes, 'both');
  t.false((await again.blob).created);
  t.is((await again.named).createdAt, record.createdAt);
  const bad = store.putNamed(randomBytes(8), '../nope');
  await rejectsWith(t, bad.blob, 'AGT_ERR_NAME_INVALID');
  await rejectsWith(t, bad.named, 'AGT_ERR_NAME_INVALID');
  const big = (await ModuleStore.open(store.root, { maxModuleBytes: 16 })).putNamed(randomBytes(64), 'big');
  await rejectsWith(t, big.blob, 'AGT_ERR_TOO_LARGE');
  await rejectsWith(t, big.named, 'AGT_ERR_TOO_LARGE');
  t.deepEqual((await store.list()).map((r) => r.name), ['both']);
  t.deepEqual(await store.verifyAll(), []);
});
