import fs from 'node:fs';
import { promisify } from 'node:util';

/**
 * The descriptor-level calls the durable write paths make (module blobs and names, the desired-state file),
 * behind one interface with two implementations:
 *
 *   threadpool  each call is one request to libuv's thread pool: the event loop never waits on a disk.
 *   inline      each call runs synchronously on the event loop. Chosen for memory file systems (tmpfs, ramfs:
 *               the QEMU guest's initramfs), where a call is a memory copy of a few microseconds while a trip
 *               through the thread pool costs a thread wake-up and a loop wake-up each (0.1–0.3 ms on shared
 *               vCPUs). A deploy makes a dozen of them, which was most of its cost there.
 *
 * Both return promises, so callers are written once. Writes larger than INLINE_MAX_WRITE go to the thread pool
 * even inline, so a 64 MiB module never stalls the loop for the length of its copy.
 */
export interface FileOps {
  readonly kind: 'threadpool' | 'inline';
  open(path: string, flags: number, mode?: number): Promise<number>;
  /** Writes all of `data` at `position` (or the file position when omitted), looping over short writes. */
  writeAll(fd: number, data: Uint8Array, position?: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  fstat(fd: number): Promise<fs.Stats>;
  fchmod(fd: number, mode: number): Promise<void>;
  close(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  readFile(path: string): Promise<Buffer>;
}

const INLINE_MAX_WRITE = 1024 * 1024;
/** O_DSYNC where the platform has it (Linux); callers fsync after writing where it is undefined. */
export const DSYNC = fs.constants.O_DSYNC as number | undefined;
/** statfs(2) f_type of the file systems whose data lives in memory only. */
const MEMORY_FS_TYPES = new Set([0x01021994 /* TMPFS_MAGIC */, 0x858458f6 /* RAMFS_MAGIC */]);

const pwrite = promisify(fs.write);
const fsyncAsync = promisify(fs.fsync);
const fstatAsync = promisify(fs.fstat);
const fchmodAsync = promisify(fs.fchmod);
const closeAsync = promisify(fs.close);
const openAsync = promisify(fs.open) as (path: string, flags: number, mode?: number) => Promise<number>;
const renameAsync = promisify(fs.rename);

async function writeAllAsync(fd: number, data: Uint8Array, position?: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    off += (await pwrite(fd, data, off, data.length - off, position === undefined ? null : position + off)).bytesWritten;
  }
}

export const threadpoolOps: FileOps = {
  kind: 'threadpool',
  open: openAsync,
  writeAll: writeAllAsync,
  fsync: fsyncAsync,
  fstat: fstatAsync,
  fchmod: fchmodAsync,
  close: closeAsync,
  rename: renameAsync,
  readFile: promisify(fs.readFile) as (path: string) => Promise<Buffer>,
};

/** Runs `f` now; its throw becomes the promise's rejection, as with the thread-pool calls. */
function now<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

export const inlineOps: FileOps = {
  kind: 'inline',
  open: (path, flags, mode) => now(() => fs.openSync(path, flags, mode)),
  writeAll: (fd, data, position) => {
    if (data.length > INLINE_MAX_WRITE) return writeAllAsync(fd, data, position);
    return now(() => {
      let off = 0;
      while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, position === undefined ? null : position + off);
    });
  },
  fsync: (fd) => now(() => fs.fsyncSync(fd)),
  fstat: (fd) => now(() => fs.fstatSync(fd)),
  fchmod: (fd, mode) => now(() => fs.fchmodSync(fd, mode)),
  close: (fd) => now(() => fs.closeSync(fd)),
  rename: (from, to) => now(() => fs.renameSync(from, to)),
  // Small files only (name records): a blob is read through the thread pool whatever the file system.
  readFile: (path) => now(() => fs.readFileSync(path)),
};

/** The implementation for files under `dir`: inline on a memory file system, the thread pool elsewhere. */
export function fileOpsFor(dir: string): FileOps {
  try {
    return MEMORY_FS_TYPES.has(fs.statfsSync(dir).type) ? inlineOps : threadpoolOps;
  } catch {
    // Unknown: the thread pool is never wrong, only slower on memory.
    return threadpoolOps;
  }
}
