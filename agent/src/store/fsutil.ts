import { createHash } from 'node:crypto';
import fs, { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { DSYNC, threadpoolOps, type FileOps } from './file-ops.js';

export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function ioError(action: string, path: string, err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  const errno = errnoCode(err);
  return new AgentError('AGT_ERR_STORE_IO', `could not ${action} ${path}: ${reason}`, { path, ...(errno ? { errno } : {}) }, { cause: err });
}

/** Runs one file-system step and turns whatever it throws into AGT_ERR_STORE_IO naming the step and path. */
export async function io<T>(action: string, path: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw ioError(action, path, err);
  }
}

/**
 * A rename is durable only once the directory holding the new entry is flushed; without this a power cut
 * can roll the rename back even though the file's data was synced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * fsyncDir() with each directory opened once and kept open: a sync is then one request (see FileOps) instead of
 * three (open, fsync, close), on the path of every blob and name a deploy stores. Plain descriptors (not
 * FileHandles) so an owner that is dropped without close() leaks them quietly instead of warning; the store
 * lives as long as its process.
 */
export class DirSyncer {
  private readonly fds = new Map<string, Promise<number>>();

  constructor(private readonly ops: FileOps = threadpoolOps) {}

  async sync(dir: string): Promise<void> {
    let fd = this.fds.get(dir);
    if (fd === undefined) {
      fd = this.ops.open(dir, fs.constants.O_RDONLY);
      this.fds.set(dir, fd);
      // A failed open is not cached: the next sync tries again.
      fd.catch(() => this.fds.delete(dir));
    }
    await this.ops.fsync(await fd);
  }
}

/**
 * O_EXCL so that a colliding temp name fails loudly instead of two writers sharing one file; O_DSYNC so that
 * the write returns durable (data and size), one request instead of a write and an fsync.
 */
export async function writeSynced(path: string, data: Uint8Array | string, ops: FileOps = threadpoolOps): Promise<void> {
  const fd = await ops.open(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (DSYNC ?? 0), 0o644);
  try {
    await ops.writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (DSYNC === undefined) await ops.fsync(fd);
  } finally {
    await ops.close(fd);
  }
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true, recursive: true }).catch(() => undefined);
}

/** Streams so that verifying a large blob does not hold it in memory. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
