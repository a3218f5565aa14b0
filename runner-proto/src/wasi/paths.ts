/**
 * Preopen confinement. Node has no openat(2)/O_BENEATH, so confinement is done on path strings:
 *  1. the guest path is normalised lexically against the directory fd's position inside its preopen; absolute
 *     paths and any `..` that would climb above the preopen root are refused (ENOTCAPABLE);
 *  2. the result is resolved with realpath(3), and the real path must stay under the preopen root's real path,
 *     so a symlink anywhere along the path that leads outside is refused (ENOTCAPABLE);
 *  3. when the target does not exist yet (creation), the parent is resolved and checked instead, and a dangling
 *     symlink in the final position is followed by hand, hop by hop, each hop checked again;
 *  4. the host operation is then applied to the resolved real path, never to the guest's spelling.
 * What this does not cover: a host process outside the sandbox swapping directories for symlinks between the
 * check and the use. The module itself cannot race it (one thread, synchronous calls), and the runner owns the
 * preopen directories.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Errno, Filetype } from './constants.js';

/** Thrown inside the host to return an errno from deep within a call; caught by the call wrapper. */
export class WasiErrno extends Error {
  constructor(readonly errno: number) {
    super(`wasi errno ${errno}`);
    this.name = 'WasiErrno';
  }
}

/** A directory inside a preopen: the preopen's real root plus the components below it. */
export interface DirLocation {
  readonly root: string;
  readonly rel: readonly string[];
}

const MAX_SYMLINK_HOPS = 40;

export function hostPathOf(dir: DirLocation): string {
  return dir.rel.length === 0 ? dir.root : path.join(dir.root, ...dir.rel);
}

/** True when `candidate` (a real path) is the root or lies beneath it. */
export function isWithin(root: string, candidate: string): boolean {
  if (candidate === root) return true;
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  return candidate.startsWith(prefix);
}

/**
 * Normalises a guest path against a directory's position, returning components below the root.
 * Refuses what a capability-based host must refuse before touching the file system.
 */
export function lexicalComponents(dir: DirLocation, guestPath: string): string[] {
  if (guestPath.length === 0) throw new WasiErrno(Errno.NOENT);
  if (guestPath.includes('\0')) throw new WasiErrno(Errno.ILSEQ);
  if (guestPath.startsWith('/')) throw new WasiErrno(Errno.NOTCAPABLE);
  const parts = [...dir.rel];
  for (const component of guestPath.split('/')) {
    if (component === '' || component === '.') continue;
    if (component === '..') {
      if (parts.length === 0) throw new WasiErrno(Errno.NOTCAPABLE);
      parts.pop();
      continue;
    }
    parts.push(component);
  }
  return parts;
}

export interface Resolved {
  /** Real host path the operation must use. */
  readonly hostPath: string;
  /** lstat of hostPath, or undefined when nothing exists there yet. */
  readonly stat: fs.BigIntStats | undefined;
}

function componentsToHost(root: string, parts: readonly string[]): string {
  return parts.length === 0 ? root : path.join(root, ...parts);
}

function realpathInside(root: string, hostPath: string): string {
  const real = fs.realpathSync.native(hostPath);
  if (!isWithin(root, real)) throw new WasiErrno(Errno.NOTCAPABLE);
  return real;
}

function lstatOrUndefined(hostPath: string): fs.BigIntStats | undefined {
  return fs.lstatSync(hostPath, { bigint: true, throwIfNoEntry: false });
}

/** Resolves following every symlink, including the last component (POSIX open without O_NOFOLLOW). */
export function resolveFollow(dir: DirLocation, guestPath: string): Resolved {
  let hostPath = componentsToHost(dir.root, lexicalComponents(dir, guestPath));
  for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
    try {
      const real = realpathInside(dir.root, hostPath);
      return { hostPath: real, stat: lstatOrUndefined(real) };
    } catch (err) {
      if (!(isNodeError(err) && err.code === 'ENOENT')) throw err;
    }
    // The full path does not resolve: the parent must, and must be inside.
    const parent = realpathInside(dir.root, path.dirname(hostPath));
    const candidate = path.join(parent, path.basename(hostPath));
    const stat = lstatOrUndefined(candidate);
    if (stat === undefined) return { hostPath: candidate, stat: undefined };
    if (!stat.isSymbolicLink()) throw new WasiErrno(Errno.NOENT);
    // A dangling symlink: creating "through" it would create its target, so its target is checked like any path.
    hostPath = path.resolve(parent, fs.readlinkSync(candidate));
  }
  throw new WasiErrno(Errno.LOOP);
}

/** Resolves the parent only; the last component is taken as is (unlink, rmdir, rename, lstat, mkdir). */
export function resolveNoFollow(dir: DirLocation, guestPath: string): Resolved {
  const parts = lexicalComponents(dir, guestPath);
  if (parts.length === 0) {
    const real = realpathInside(dir.root, dir.root);
    return { hostPath: real, stat: lstatOrUndefined(real) };
  }
  const parent = realpathInside(dir.root, componentsToHost(dir.root, parts.slice(0, -1)));
  const candidate = path.join(parent, parts[parts.length - 1] as string);
  return { hostPath: candidate, stat: lstatOrUndefined(candidate) };
}

/** Turns a real host path under `root` back into a directory location. */
export function locationOf(root: string, realPath: string): DirLocation {
  const rel = path.relative(root, realPath);
  return { root, rel: rel === '' ? [] : rel.split(path.sep) };
}

export function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

const NODE_ERRNO: Readonly<Record<string, number>> = {
  E2BIG: Errno.TOOBIG,
  EACCES: Errno.ACCES,
  EAGAIN: Errno.AGAIN,
  EBADF: Errno.BADF,
  EBUSY: Errno.BUSY,
  EEXIST: Errno.EXIST,
  EFBIG: Errno.FBIG,
  EINVAL: Errno.INVAL,
  EIO: Errno.IO,
  EISDIR: Errno.ISDIR,
  ELOOP: Errno.LOOP,
  EMFILE: Errno.MFILE,
  ENAMETOOLONG: Errno.NAMETOOLONG,
  ENFILE: Errno.NFILE,
  ENOENT: Errno.NOENT,
  ENOMEM: Errno.NOMEM,
  ENOSPC: Errno.NOSPC,
  ENOSYS: Errno.NOSYS,
  ENOTDIR: Errno.NOTDIR,
  ENOTEMPTY: Errno.NOTEMPTY,
  ENOTSUP: Errno.NOTSUP,
  EOPNOTSUPP: Errno.NOTSUP,
  EOVERFLOW: Errno.OVERFLOW,
  EPERM: Errno.PERM,
  EROFS: Errno.ROFS,
  ESPIPE: Errno.SPIPE,
  EXDEV: Errno.XDEV,
};

/** Maps a Node fs error to a WASI errno; unknown codes become EIO rather than leaking host detail. */
export function errnoFromNodeError(err: NodeJS.ErrnoException): number {
  return (err.code !== undefined ? NODE_ERRNO[err.code] : undefined) ?? Errno.IO;
}

export function filetypeOf(stat: fs.BigIntStats | fs.Dirent): number {
  if (stat.isFile()) return Filetype.REGULAR_FILE;
  if (stat.isDirectory()) return Filetype.DIRECTORY;
  if (stat.isSymbolicLink()) return Filetype.SYMBOLIC_LINK;
  if (stat.isCharacterDevice()) return Filetype.CHARACTER_DEVICE;
  if (stat.isBlockDevice()) return Filetype.BLOCK_DEVICE;
  if (stat.isSocket()) return Filetype.SOCKET_STREAM;
  return Filetype.UNKNOWN;
}
