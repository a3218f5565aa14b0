/**
 * Content-addressed module store. All state is on disk under one root, so a restarted agent re-reads it:
 *
 *   <root>/
 *   ├── blobs/sha256/<64 hex>   module bytes, named by their sha256; written once, never edited in place
 *   ├── names/<name>.json       {name, digest, size, createdAt, updatedAt, meta?}; replaced whole
 *   └── tmp/                    writes in progress; anything found here by open() is debris from a crash
 *
 * Names (and blobs of unknown digest: putStream) follow one pattern: write under tmp/ and make it durable
 * (O_DSYNC write, or fsync), rename it into place, fsync the target directory. rename(2) within one filesystem is atomic, so a reader sees no
 * file or a complete one, never a partial one. A name is written only after its blob's directory entry has
 * been synced (put() returns after that), so no crash can leave a name pointing at a missing blob.
 *
 * A blob whose digest is known up front (put, putNamed: every upload and deploy of bytes) is written at its
 * final name instead (O_EXCL), with the owner-execute bit set while it is unfinished ("unsealed"): an O_DSYNC
 * write, an fsync of blobs/, then the bit is cleared. On ext4 that is one journal commit instead of two (the rename's), the
 * larger part of what a new module waits for. A crash can leave an unsealed blob partly written; it is never
 * referenced (references are written only after it is durable), and open() hashes every unsealed blob, clears
 * the bit of those that are whole and deletes the rest. Inside the process a blob being written is absent to
 * every reader until it is durable (#writing). Blobs written by earlier versions have no execute bit: sealed.
 *
 * One process owns a root at a time: open() empties tmp/, which would destroy a live writer's files.
 *
 * Locks (in-process promise chains, see KeyedLock), always taken in this order:
 *   'refs'        every change to names/ and every gc() pass; gc needs a stable view of all references,
 *                 and name writes are a few hundred bytes, so one chain costs little
 *   'blob:<hex>'  the commit of one blob and its deletion by gc(); concurrent identical uploads hash and
 *                 spool in parallel, then commit one after another and all but the first see created:false
 */
import { randomBytes, createHash } from 'node:crypto';
import fs from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { pino } from 'pino';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { DIGEST_ALGORITHM, formatDigest, parseDigest } from './digest.js';
import { DSYNC, fileOpsFor, type FileOps } from './file-ops.js';
import { DirSyncer, errnoCode, fsyncDir, io, ioError, removeQuietly, sha256File, writeSynced } from './fsutil.js';
import { KeyedLock } from './keyed-lock.js';
import { isValidName, validateName } from './name.js';
import { checkMeta, freezeRecord, parseRecord, type BlobInfo, type ModuleMeta, type NameRecord } from './record.js';

export const DEFAULT_MAX_MODULE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_UNNAMED_GRACE_MS = 10 * 60 * 1000;

export interface ModuleStoreOptions {
  readonly logger?: Logger;
  /** Upper bound for put() and putStream(); default 64 MiB. */
  readonly maxModuleBytes?: number;
  /**
   * How long gc() spares a blob that put() returned but no name references yet. Without it, a gc()
   * triggered by an unrelated remove() could delete an upload between its put() and its setName().
   */
  readonly unnamedGraceMs?: number;
}

export interface PutOptions {
  /** `sha256:<hex>` the caller expects; on a mismatch nothing is stored. */
  readonly expectedDigest?: string;
}

export interface PutStreamOptions extends PutOptions {
  /** Further limit for this stream; the store's maxModuleBytes applies regardless. */
  readonly maxBytes?: number;
}

export interface PutResult {
  readonly digest: string;
  readonly size: number;
  /** false when the blob was already stored; the existing file is left untouched. */
  readonly created: boolean;
}

export interface RemoveResult {
  readonly removed: NameRecord;
  /** Digests whose blobs the gc() that followed deleted. */
  readonly collected: readonly string[];
}

export type StoreProblemKind = 'bad-record' | 'missing-blob' | 'size-mismatch' | 'digest-mismatch' | 'stray-file';

export interface StoreProblem {
  readonly kind: StoreProblemKind;
  readonly path: string;
  readonly message: string;
  readonly name?: string;
  readonly digest?: string;
}

const HEX_NAME = /^[0-9a-f]{64}$/;
/** Owner-execute: set on a blob while it is written at its final name, cleared once it is durable (see above). */
const UNSEALED_BIT = 0o100;
/** O_DSYNC: each write returns once its data (and the size to read it back) is durable, one request instead of two. */
const CREATE_EXCL_DSYNC = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (DSYNC ?? 0);
const RECORD_SUFFIX = '.json';

export class ModuleStore {
  readonly root: string;
  readonly maxModuleBytes: number;
  readonly #log: Logger;
  readonly #graceMs: number;
  readonly #locks = new KeyedLock();
  /** hex → time after which gc() may collect the blob if still unnamed. */
  readonly #unnamed = new Map<string, number>();
  readonly #blobDir: string;
  readonly #nameDir: string;
  readonly #tmpDir: string;
  /** Digests referenced from outside names/ (the desired state's apps); gc() never collects them. */
  #roots: () => Iterable<string> = () => [];
  /**
   * Sizes of blobs this process stored or saw, so resolve() of a digest (every deploy by digest) needs no
   * stat: one process owns the root, and gc() forgets what it deletes. verifyAll() and setName() still stat.
   */
  readonly #sizes = new Map<string, number>();
  /** Name records this process wrote (one process owns the root), for the createdAt a rewrite keeps. */
  readonly #written = new Map<string, NameRecord>();
  /** Blobs being written at their final name: not there yet for any reader. */
  readonly #writing = new Set<string>();
  readonly #ops: FileOps;
  readonly #dirs: DirSyncer;

  private constructor(root: string, maxModuleBytes: number, graceMs: number, log: Logger) {
    this.root = root;
    this.maxModuleBytes = maxModuleBytes;
    this.#graceMs = graceMs;
    this.#log = log;
    this.#blobDir = join(root, 'blobs', DIGEST_ALGORITHM);
    this.#nameDir = join(root, 'names');
    this.#tmpDir = join(root, 'tmp');
    this.#ops = fileOpsFor(root);
    this.#dirs = new DirSyncer(this.#ops);
  }

  static async open(root: string, options: ModuleStoreOptions = {}): Promise<ModuleStore> {
    if (typeof root !== 'string' || root.length === 0) {
      throw new AgentError('AGT_ERR_CONFIG_INVALID', `store root must be a non-empty path, received ${JSON.stringify(root)}`, {
        field: 'root',
      });
    }
    const maxModuleBytes = positiveInt(options.maxModuleBytes, DEFAULT_MAX_MODULE_BYTES, 'maxModuleBytes', 'AGT_ERR_CONFIG_INVALID');
    const graceMs = options.unnamedGraceMs ?? DEFAULT_UNNAMED_GRACE_MS;
    if (!Number.isFinite(graceMs) || graceMs < 0) {
      throw new AgentError('AGT_ERR_CONFIG_INVALID', `unnamedGraceMs must be a finite number >= 0, received ${graceMs}`, {
        field: 'unnamedGraceMs',
      });
    }
    const log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'store' });
    // Before the constructor: it asks the file system under the root what it is (see FileOps).
    await io('create directory', root, () => mkdir(root, { recursive: true }));
    const store = new ModuleStore(resolvePath(root), maxModuleBytes, graceMs, log);
    await store.#prepare();
    return store;
  }

  async #prepare(): Promise<void> {
    for (const dir of [this.#blobDir, this.#nameDir, this.#tmpDir]) {
      await io('create directory', dir, () => mkdir(dir, { recursive: true }));
    }
    const debris = await io('list', this.#tmpDir, () => readdir(this.#tmpDir));
    for (const entry of debris) {
      const path = join(this.#tmpDir, entry);
      await io('remove crash debris', path, () => rm(path, { recursive: true, force: true }));
    }
    // Directories made by mkdir above must survive a power cut before any blob is renamed into them.
    for (const dir of [this.root, join(this.root, 'blobs'), this.#blobDir, this.#nameDir, this.#tmpDir]) {
      await io('sync directory', dir, () => fsyncDir(dir));
    }
    if (debris.length > 0) this.#log.warn({ removed: debris.length }, 'removed unfinished writes left by a crash');
    await this.#settleUnsealed();
    this.#log.info({ root: this.root, io: this.#ops.kind }, 'module store opened');
  }

  /** Unsealed blobs are writes a crash interrupted: whole ones are sealed, the others deleted (see the header). */
  async #settleUnsealed(): Promise<void> {
    let removed = 0;
    for (const entry of await io('list', this.#blobDir, () => readdir(this.#blobDir))) {
      if (!HEX_NAME.test(entry)) continue;
      const path = join(this.#blobDir, entry);
      const st = await io('stat', path, () => stat(path));
      if (!st.isFile() || (st.mode & UNSEALED_BIT) === 0) continue;
      if ((await io('read', path, () => sha256File(path))) === entry) {
        // Not synced: a seal lost in a power cut only means this check runs again.
        await io('seal', path, () => chmod(path, st.mode & 0o777 & ~UNSEALED_BIT));
        this.#log.warn({ digest: formatDigest(entry) }, 'blob written just before a crash is whole; kept');
      } else {
        await io('remove crash debris', path, () => unlink(path));
        removed++;
      }
    }
    if (removed > 0) {
      await io('sync directory', this.#blobDir, () => fsyncDir(this.#blobDir));
      this.#log.warn({ removed }, 'removed blobs a crash left partly written');
    }
  }

  /**
   * Declares digests that other state refers to (apps deployed by digest): gc() keeps their blobs even when
   * no name points at them. The function is called under the 'refs' lock on every gc() pass.
   */
  setRoots(roots: () => Iterable<string>): void {
    this.#roots = roots;
  }

  blobPath(digest: string): string {
    return join(this.#blobDir, parseDigest(digest).hex);
  }

  async put(bytes: Uint8Array, opts: PutOptions = {}): Promise<PutResult> {
    if (!(bytes instanceof Uint8Array)) {
      throw new AgentError('AGT_ERR_BAD_REQUEST', `module bytes must be a Uint8Array, received ${typeof bytes}`, { field: 'bytes' });
    }
    const expected = opts.expectedDigest === undefined ? undefined : parseDigest(opts.expectedDigest).hex;
    if (bytes.byteLength > this.maxModuleBytes) throw this.#tooLarge(bytes.byteLength, this.maxModuleBytes, 'maxModuleBytes');
    const hex = createHash(DIGEST_ALGORITHM).update(bytes).digest('hex');
    if (expected !== undefined && expected !== hex) throw mismatch('module bytes', hex, expected);
    return this.#putHashed(bytes, hex);
  }

  /**
   * put() and setName() for one module, overlapped: the name's record is written and synced while the blob is,
   * and renamed into place only once the blob is durable, so a name still never points at a missing blob, with
   * one directory sync fewer on the way. `blob` settles when the blob is durable (what other state may refer
   * to it from then on), `named` when the name is too; a failed blob fails both. `digest`: the caller's own
   * sha256 of these very bytes (the agent hashes an upload once, to check it), which saves hashing it again.
   */
  putNamed(bytes: Uint8Array, name: string, meta?: ModuleMeta, digest?: string): { blob: Promise<PutResult>; named: Promise<NameRecord> } {
    let hex: string;
    let metaCopy: ModuleMeta | undefined;
    try {
      if (!(bytes instanceof Uint8Array)) {
        throw new AgentError('AGT_ERR_BAD_REQUEST', `module bytes must be a Uint8Array, received ${typeof bytes}`, { field: 'bytes' });
      }
      if (bytes.byteLength > this.maxModuleBytes) throw this.#tooLarge(bytes.byteLength, this.maxModuleBytes, 'maxModuleBytes');
      validateName(name);
      metaCopy = meta === undefined ? undefined : checkMeta(meta);
      hex = digest === undefined ? createHash(DIGEST_ALGORITHM).update(bytes).digest('hex') : parseDigest(digest).hex;
    } catch (err) {
      const failed = Promise.reject(err);
      return { blob: failed, named: failed };
    }
    const blob = this.#putHashed(bytes, hex);
    const named = this.#locks.run('refs', () => this.#writeName(name, hex, metaCopy, { size: bytes.byteLength, durable: blob }));
    return { blob, named };
  }

  async #putHashed(bytes: Uint8Array, hex: string): Promise<PutResult> {
    return this.#locks.run(`blob:${hex}`, async () => {
      this.#pinUnnamed(hex);
      const digest = formatDigest(hex);
      const size = bytes.byteLength;
      // The common case (new bytes) tries the create first: an existing blob answers EEXIST in the same call.
      const written = await this.#writeInPlace(hex, bytes);
      if (written === undefined) {
        if (await this.#hasIntactEntry(hex, size)) {
          this.#remember(hex, size);
          return { digest, size, created: false };
        }
        // Damaged (wrong size): replaced whole, by rename, since the file is in place.
        const tmp = this.#tmpPath('blob');
        try {
          await io('write', tmp, () => writeSynced(tmp, bytes, this.#ops));
          await this.#commitBlob(tmp, hex);
        } catch (err) {
          await removeQuietly(tmp);
          throw err;
        }
      }
      this.#remember(hex, size);
      this.#log.info({ digest, size }, 'blob stored');
      return { digest, size, created: true };
    });
  }

  /**
   * Writes a new blob at its final name, unsealed, and makes it durable (file, then directory); the seal is set
   * afterwards, off the caller's path. undefined when a file of that name exists. Caller holds 'blob:<hex>'.
   */
  async #writeInPlace(hex: string, bytes: Uint8Array): Promise<true | undefined> {
    const path = join(this.#blobDir, hex);
    const ops = this.#ops;
    // Before the file exists: a reader's stat or read that sees it finds the mark when it returns.
    this.#writing.add(hex);
    let fd: number;
    try {
      fd = await ops.open(path, CREATE_EXCL_DSYNC, 0o744);
    } catch (err) {
      this.#writing.delete(hex);
      if (errnoCode(err) === 'EEXIST') return undefined;
      throw ioError('create', path, err);
    }
    try {
      await io('write', path, () => ops.writeAll(fd, bytes));
      if (DSYNC === undefined) await io('sync', path, () => ops.fsync(fd));
      await io('sync directory', this.#blobDir, () => this.#dirs.sync(this.#blobDir));
    } catch (err) {
      this.#writing.delete(hex);
      await ops.close(fd).catch(() => undefined);
      await removeQuietly(path);
      throw err;
    }
    this.#writing.delete(hex);
    void this.#seal(fd, path);
    return true;
  }

  /** Clears the unsealed bit of a durable blob and closes it. Not synced: a lost seal is checked again at open(). */
  async #seal(fd: number, path: string): Promise<void> {
    const ops = this.#ops;
    try {
      const st = await ops.fstat(fd);
      await ops.fchmod(fd, st.mode & 0o777 & ~UNSEALED_BIT);
    } catch (err) {
      this.#log.warn({ path, err: String(err) }, 'could not seal a stored blob; open() will check it');
    } finally {
      await ops.close(fd).catch(() => undefined);
    }
  }

  async putStream(source: AsyncIterable<Uint8Array>, opts: PutStreamOptions = {}): Promise<PutResult> {
    const expected = opts.expectedDigest === undefined ? undefined : parseDigest(opts.expectedDigest).hex;
    const own = opts.maxBytes === undefined ? undefined : positiveInt(opts.maxBytes, 0, 'maxBytes', 'AGT_ERR_BAD_REQUEST');
    const limit = own === undefined ? this.maxModuleBytes : Math.min(own, this.maxModuleBytes);
    const limitName = own !== undefined && own <= this.maxModuleBytes ? 'maxBytes' : 'maxModuleBytes';

    const tmp = this.#tmpPath('blob');
    const hash = createHash(DIGEST_ALGORITHM);
    let size = 0;
    let fh: FileHandle | undefined;
    try {
      fh = await io('create', tmp, () => open(tmp, 'wx', 0o644));
      // Errors thrown by `source` itself propagate unchanged: they belong to the caller (a closed socket,
      // an aborted request), not to the store.
      for await (const chunk of source) {
        if (!(chunk instanceof Uint8Array)) {
          throw new AgentError('AGT_ERR_BAD_REQUEST', `stream chunks must be Uint8Array, received ${typeof chunk}`, {
            field: 'source',
            offset: size,
          });
        }
        size += chunk.byteLength;
        if (size > limit) throw this.#tooLarge(size, limit, limitName, true);
        hash.update(chunk);
        const handle = fh;
        await io('write', tmp, () => writeAll(handle, chunk));
      }
      const handle = fh;
      await io('sync', tmp, () => handle.sync());
      fh = undefined;
      await io('close', tmp, () => handle.close());
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await removeQuietly(tmp);
      throw err;
    }

    const hex = hash.digest('hex');
    if (expected !== undefined && expected !== hex) {
      await removeQuietly(tmp);
      throw mismatch('streamed module', hex, expected);
    }
    return this.#locks.run(`blob:${hex}`, async () => {
      this.#pinUnnamed(hex);
      const digest = formatDigest(hex);
      try {
        if (await this.#hasIntactEntry(hex, size)) {
          await removeQuietly(tmp);
          return { digest, size, created: false };
        }
        await this.#commitBlob(tmp, hex);
      } catch (err) {
        await removeQuietly(tmp);
        throw err;
      }
      this.#log.info({ digest, size }, 'blob stored from stream');
      return { digest, size, created: true };
    });
  }

  /** Reads a blob and checks its sha256, so bytes rotted on disk are never handed to the runner. */
  async get(digest: string): Promise<Buffer> {
    const { hex } = parseDigest(digest);
    const path = join(this.#blobDir, hex);
    if (this.#writing.has(hex)) throw notFoundBlob(digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') {
        this.#sizes.delete(hex);
        throw notFoundBlob(digest);
      }
      throw ioError('read', path, err);
    }
    // Read while it was being written in place (#writeInPlace): not there yet.
    if (this.#writing.has(hex)) throw notFoundBlob(digest);
    const actual = createHash(DIGEST_ALGORITHM).update(bytes).digest('hex');
    if (actual !== hex) {
      this.#log.error({ digest, actual: formatDigest(actual), path }, 'blob corrupted on disk');
      throw new AgentError(
        'AGT_ERR_DIGEST_MISMATCH',
        `blob ${path} hashes to ${formatDigest(actual)}, expected ${digest}; the file is corrupted on disk (upload the module again)`,
        { path, rule: 'blob-integrity' },
      );
    }
    return bytes;
  }

  async has(digest: string): Promise<boolean> {
    return (await this.#blobSize(parseDigest(digest).hex)) !== undefined;
  }

  /** Points `name` at a stored blob. Re-pointing keeps createdAt; meta is replaced, not merged. */
  async setName(name: string, digest: string, meta?: ModuleMeta): Promise<NameRecord> {
    validateName(name);
    const { hex } = parseDigest(digest);
    const metaCopy = meta === undefined ? undefined : checkMeta(meta);
    return this.#locks.run('refs', () => this.#writeName(name, hex, metaCopy));
  }

  /**
   * Writes a name record; caller holds 'refs'. With `pending` (a put() of the blob in flight), the record is
   * written and synced meanwhile and renamed into place only once the blob is durable.
   */
  async #writeName(name: string, hex: string, metaCopy: ModuleMeta | undefined, pending?: { size: number; durable: Promise<unknown> }): Promise<NameRecord> {
    const size = pending ? pending.size : await this.#blobSize(hex);
    if (size === undefined) {
      throw new AgentError('AGT_ERR_NOT_FOUND', `cannot name ${JSON.stringify(name)}: blob ${formatDigest(hex)} is not in the store; put() the module first`, {
        field: 'digest',
      });
    }
    // Only createdAt is carried over, so the record this process last wrote serves: no read on a deploy's path.
    const previous = this.#written.get(name) ??
      (await this.#readRecord(name).catch((err: unknown) => {
        // A damaged record is about to be replaced whole; losing its createdAt is the only cost.
        this.#log.warn({ name, err }, 'replacing unreadable name record');
        return undefined;
      }));
    const now = new Date().toISOString();
    const record: NameRecord = {
      name,
      digest: formatDigest(hex),
      size,
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      ...(metaCopy === undefined ? {} : { meta: metaCopy }),
    };
    const target = this.#namePath(name);
    const tmp = this.#tmpPath('name');
    try {
      await io('write', tmp, () => writeSynced(tmp, `${JSON.stringify(record, null, 2)}\n`, this.#ops));
      // A name made durable before its blob could outlive it in a power cut.
      if (pending) await pending.durable;
      await io('rename into place', target, () => this.#ops.rename(tmp, target));
    } catch (err) {
      await removeQuietly(tmp);
      throw err;
    }
    await io('sync directory', this.#nameDir, () => this.#dirs.sync(this.#nameDir));
    this.#written.delete(name);
    this.#written.set(name, record);
    if (this.#written.size > 4096) this.#written.delete(this.#written.keys().next().value!);
    this.#unnamed.delete(hex);
    this.#log.info({ name, digest: record.digest, previous: previous?.digest }, 'name set');
    return freezeRecord(record);
  }

  /** `sha256:<hex>` resolves to the blob alone; anything else must be a valid name. */
  async resolve(nameOrDigest: string): Promise<NameRecord | BlobInfo> {
    if (typeof nameOrDigest === 'string' && nameOrDigest.includes(':')) {
      const { hex } = parseDigest(nameOrDigest);
      const size = this.#sizes.get(hex) ?? (await this.#blobSize(hex));
      if (size === undefined) throw notFoundBlob(nameOrDigest);
      this.#remember(hex, size);
      return Object.freeze({ digest: formatDigest(hex), size });
    }
    validateName(nameOrDigest);
    const record = await this.#readRecord(nameOrDigest);
    if (record === undefined) {
      throw new AgentError('AGT_ERR_NOT_FOUND', `no module named ${JSON.stringify(nameOrDigest)}; expected a name listed by list() or a sha256:<hex> digest`, {
        field: 'name',
      });
    }
    return record;
  }

  /** All readable name records, sorted by name. Unreadable ones are skipped here and reported by verifyAll(). */
  async list(): Promise<NameRecord[]> {
    const records: NameRecord[] = [];
    for (const name of await this.#recordNames()) {
      try {
        const record = await this.#readRecord(name);
        if (record !== undefined) records.push(record);
      } catch (err) {
        this.#log.warn({ name, err }, 'skipping unreadable name record');
      }
    }
    return records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async remove(name: string): Promise<RemoveResult> {
    validateName(name);
    const removed = await this.#locks.run('refs', async () => {
      const record = await this.#readRecord(name);
      if (record === undefined) {
        throw new AgentError('AGT_ERR_NOT_FOUND', `no module named ${JSON.stringify(name)} to remove`, { field: 'name' });
      }
      const path = this.#namePath(name);
      this.#written.delete(name);
      await io('remove', path, () => unlink(path));
      await io('sync directory', this.#nameDir, () => this.#dirs.sync(this.#nameDir));
      this.#log.info({ name, digest: record.digest }, 'name removed');
      return record;
    });
    return { removed, collected: await this.gc() };
  }

  /**
   * Deletes blobs that no name references and that are past their unnamed grace period. If any record
   * cannot be read, nothing is deleted: that record's reference is unknown, and a lost module is worse
   * than a leaked one.
   */
  async gc(): Promise<string[]> {
    return this.#locks.run('refs', async () => {
      const referenced = new Set<string>();
      for (const name of await this.#recordNames()) {
        let record: NameRecord | undefined;
        try {
          record = await this.#readRecord(name);
        } catch (err) {
          this.#log.error({ name, err }, 'gc skipped: a name record is unreadable (see verifyAll())');
          return [];
        }
        if (record !== undefined) referenced.add(parseDigest(record.digest).hex);
      }
      for (const d of this.#roots()) referenced.add(parseDigest(d).hex);
      const now = Date.now();
      for (const [hex, until] of this.#unnamed) if (until <= now) this.#unnamed.delete(hex);

      const collected: string[] = [];
      for (const entry of await io('list', this.#blobDir, () => readdir(this.#blobDir))) {
        if (!HEX_NAME.test(entry) || referenced.has(entry)) continue;
        const deleted = await this.#locks.run(`blob:${entry}`, async () => {
          // Re-checked under the blob lock: a put() may have pinned it while we were waiting.
          if (this.#unnamed.has(entry)) return false;
          this.#sizes.delete(entry);
          const path = join(this.#blobDir, entry);
          try {
            await unlink(path);
            return true;
          } catch (err) {
            if (errnoCode(err) === 'ENOENT') return false;
            throw ioError('remove', path, err);
          }
        });
        if (deleted) collected.push(formatDigest(entry));
      }
      if (collected.length > 0) {
        await io('sync directory', this.#blobDir, () => this.#dirs.sync(this.#blobDir));
        this.#log.info({ collected }, 'unreferenced blobs collected');
      }
      return collected;
    });
  }

  /**
   * Checks every name and every blob: records parse and match their file name, each name's blob exists with
   * the recorded size, and each blob hashes to its file name. Returns the problems found; empty means sound.
   */
  async verifyAll(): Promise<StoreProblem[]> {
    const problems: StoreProblem[] = [];
    // Names are checked under 'refs' so a concurrent remove()+gc() cannot make a sound name look dangling.
    await this.#locks.run('refs', async () => {
      for (const entry of await io('list', this.#nameDir, () => readdir(this.#nameDir))) {
        const path = join(this.#nameDir, entry);
        const name = entry.endsWith(RECORD_SUFFIX) ? entry.slice(0, -RECORD_SUFFIX.length) : '';
        if (!isValidName(name)) {
          problems.push({ kind: 'stray-file', path, message: `${path} is not <valid name>${RECORD_SUFFIX}` });
          continue;
        }
        let record: NameRecord | undefined;
        try {
          record = await this.#readRecord(name);
        } catch (err) {
          problems.push({ kind: 'bad-record', path, name, message: err instanceof Error ? err.message : String(err) });
          continue;
        }
        if (record === undefined) continue;
        const size = await this.#blobSize(parseDigest(record.digest).hex);
        if (size === undefined) {
          problems.push({ kind: 'missing-blob', path, name, digest: record.digest, message: `name ${JSON.stringify(name)} points at ${record.digest}, which is not in blobs/` });
        } else if (size !== record.size) {
          problems.push({
            kind: 'size-mismatch',
            path,
            name,
            digest: record.digest,
            message: `name ${JSON.stringify(name)} records ${record.size} bytes; the blob has ${size}`,
          });
        }
      }
    });
    for (const entry of await io('list', this.#blobDir, () => readdir(this.#blobDir))) {
      const path = join(this.#blobDir, entry);
      if (!HEX_NAME.test(entry)) {
        problems.push({ kind: 'stray-file', path, message: `${path} is not named by 64 lowercase hex digits` });
        continue;
      }
      if (this.#writing.has(entry)) continue; // not there yet
      let actual: string;
      try {
        actual = await sha256File(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue; // collected by a gc() since readdir
        throw ioError('read', path, err);
      }
      if (actual !== entry) {
        problems.push({
          kind: 'digest-mismatch',
          path,
          digest: formatDigest(entry),
          message: `blob hashes to ${formatDigest(actual)}, expected ${formatDigest(entry)}`,
        });
      }
    }
    return problems;
  }

  #remember(hex: string, size: number): void {
    this.#sizes.delete(hex);
    this.#sizes.set(hex, size);
    // Bounded: a miss only costs the stat it saves.
    if (this.#sizes.size > 4096) this.#sizes.delete(this.#sizes.keys().next().value!);
  }

  #pinUnnamed(hex: string): void {
    this.#unnamed.set(hex, Date.now() + this.#graceMs);
  }

  /**
   * True when the blob is already in place with the expected size. A size that differs can only mean damage
   * on disk, so the caller rewrites it; a full re-hash would cost as much as the write it saves.
   */
  async #hasIntactEntry(hex: string, size: number): Promise<boolean> {
    const existing = await this.#blobSize(hex);
    if (existing === undefined) return false;
    if (existing === size) return true;
    this.#log.warn({ digest: formatDigest(hex), size: existing, expected: size }, 'stored blob has the wrong size; rewriting it');
    return false;
  }

  async #commitBlob(tmp: string, hex: string): Promise<void> {
    const target = join(this.#blobDir, hex);
    await io('rename into place', target, () => this.#ops.rename(tmp, target));
    await io('sync directory', this.#blobDir, () => this.#dirs.sync(this.#blobDir));
  }

  async #blobSize(hex: string): Promise<number | undefined> {
    if (this.#writing.has(hex)) return undefined;
    const path = join(this.#blobDir, hex);
    try {
      const st = await stat(path);
      // Checked again: the stat may have seen a blob being written in place.
      return st.isFile() && !this.#writing.has(hex) ? st.size : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw ioError('stat', path, err);
    }
  }

  /** undefined when absent; AGT_ERR_STORE_IO when present but unreadable or malformed. */
  async #readRecord(name: string): Promise<NameRecord | undefined> {
    const path = this.#namePath(name);
    let text: string;
    try {
      text = (await this.#ops.readFile(path)).toString('utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw ioError('read', path, err);
    }
    const parsed = parseRecord(text, name);
    if (typeof parsed === 'string') {
      throw new AgentError('AGT_ERR_STORE_IO', `name record ${path} is damaged: ${parsed}`, { path, rule: 'record-format' });
    }
    return parsed;
  }

  async #recordNames(): Promise<string[]> {
    const entries = await io('list', this.#nameDir, () => readdir(this.#nameDir));
    return entries
      .filter((e) => e.endsWith(RECORD_SUFFIX))
      .map((e) => e.slice(0, -RECORD_SUFFIX.length))
      .filter(isValidName);
  }

  #namePath(name: string): string {
    return join(this.#nameDir, name + RECORD_SUFFIX);
  }

  #tmpPath(kind: 'blob' | 'name'): string {
    return join(this.#tmpDir, `${kind}-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  #tooLarge(received: number, limit: number, option: string, streaming = false): AgentError {
    const amount = streaming ? `at least ${received}` : `${received}`;
    return new AgentError('AGT_ERR_TOO_LARGE', `module is ${amount} bytes; expected at most ${limit} (${option})`, {
      field: option,
      limit,
    });
  }
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await fh.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

function mismatch(what: string, actualHex: string, expectedHex: string): AgentError {
  return new AgentError(
    'AGT_ERR_DIGEST_MISMATCH',
    `${what} hash to ${formatDigest(actualHex)}, expected ${formatDigest(expectedHex)}; nothing was stored`,
    { field: 'expectedDigest' },
  );
}

function notFoundBlob(digest: string): AgentError {
  return new AgentError('AGT_ERR_NOT_FOUND', `no blob ${digest} in the store`, { field: 'digest' });
}

function positiveInt(
  value: number | undefined,
  fallback: number,
  field: string,
  code: 'AGT_ERR_CONFIG_INVALID' | 'AGT_ERR_BAD_REQUEST',
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new AgentError(code, `${field} must be a positive integer, received ${String(value)}`, { field });
  }
  return value;
}
