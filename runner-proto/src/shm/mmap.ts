import fs from 'node:fs';
import { createRequire } from 'node:module';
import { AgentError } from '../errors/index.js';

/**
 * Maps a file (a /dev/shm file on the host, an ivshmem BAR `resource2` in the guest) shared and read-write,
 * and returns an ArrayBuffer over the mapping. Node has no mmap in core; koffi calls libc's mmap and
 * `koffi.view` wraps the pointer without copying. Atomics.load/store/add work on the view across processes;
 * Atomics.wait does not (it is not a SharedArrayBuffer), which is why notification lives in notify/.
 */

export type KoffiFunction = ((...args: unknown[]) => unknown) & { async(...args: unknown[]): void };

export interface Koffi {
  load(path: string): { func(signature: string): KoffiFunction };
  view(ptr: unknown, len: number): ArrayBuffer;
  address(ptr: unknown): bigint;
}

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

export interface Libc {
  koffi: Koffi;
  lib: ReturnType<Koffi['load']>;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  munmap: (ptr: unknown, len: number) => number;
}

let libc: Libc | undefined;

export function loadLibc(): Libc {
  if (libc) return libc;
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
  } catch (err) {
    throw new AgentError('AGT_ERR_CHANNEL_REGION', 'cannot load koffi (needed to mmap the shared region)', {}, { cause: err });
  }
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    lib,
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as Libc['mmap'],
    munmap: lib.func('int munmap(void *addr, size_t len)') as Libc['munmap'],
  };
  return libc;
}

export interface Mapping {
  readonly path: string;
  readonly size: number;
  readonly buffer: ArrayBuffer;
  /** Virtual address of the mapping in this process (for futex calls on words inside it). */
  readonly address: bigint;
  /** Unmaps. The buffer must not be touched afterwards (it would fault). */
  unmap(): void;
}

/** Maps `size` bytes of an existing file. The file must be at least `size` bytes long. */
export function mapFile(path: string, size: number): Mapping {
  const c = loadLibc();
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR);
  } catch (err) {
    throw new AgentError('AGT_ERR_CHANNEL_REGION', `cannot open shared region ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
  try {
    const st = fs.fstatSync(fd);
    // Device files (a PCI resource) report size 0; only regular files are checked.
    if (st.isFile() && st.size < size) {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', `shared region ${path} is ${st.size} bytes, expected at least ${size}`, { path });
    }
    const ptr = c.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ptr === null || c.koffi.address(ptr) === MAP_FAILED) {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', `mmap of ${path} (${size} bytes) failed`, { path });
    }
    const buffer = c.koffi.view(ptr, size);
    let mapped = true;
    return {
      path,
      size,
      buffer,
      address: c.koffi.address(ptr),
      unmap() {
        if (!mapped) return;
        mapped = false;
        c.munmap(ptr, size);
      },
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates (or truncates to) a zero-filled file of `size` bytes, e.g. under /dev/shm. */
export function createRegionFile(path: string, size: number): void {
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o660);
  try {
    fs.ftruncateSync(fd, 0);
    fs.ftruncateSync(fd, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Size of an existing region file, or of a PCI BAR from its sysfs `resource` table. */
export function regionFileSize(path: string): number {
  return fs.statSync(path).size;
}
