/**
 * Our own WASI preview1 host. Not node:wasi: Node documents that one as no file-system sandbox, it cannot stream
 * stdout/stderr to a callback, and it offers no hook for output limits. Everything here is synchronous because the
 * host runs inside a worker thread that owns exactly one instance at a time.
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  Clockid,
  DIR_RIGHTS,
  Errno,
  Eventtype,
  Fdflags,
  FILE_RIGHTS,
  Filetype,
  Fstflags,
  Lookupflags,
  Oflags,
  PREVIEW1_FUNCTIONS,
  type Preview1Function,
  Rights,
  Subclockflags,
  Whence,
  WRITE_RIGHTS,
} from './constants.js';
import {
  type DirLocation,
  errnoFromNodeError,
  filetypeOf,
  hostPathOf,
  isNodeError,
  locationOf,
  resolveFollow,
  resolveNoFollow,
  WasiErrno,
} from './paths.js';
import { type WasmInstance, type WasmMemory, wasmApi } from './webassembly.js';

export interface WasiPreopen {
  /** Name the module sees, e.g. `/data`. */
  readonly guest: string;
  /** Host directory it maps to; must exist. */
  readonly host: string;
  readonly readonly: boolean;
}

/** The part of the host options that belongs to one run; see `WasiHost.configure`. */
export type WasiRunOptions = Pick<WasiHostOptions, 'args' | 'env' | 'preopens' | 'stdin' | 'outputLimit'>;

export interface WasiHostOptions {
  /** argv including argv[0]. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly preopens?: readonly WasiPreopen[];
  /** Bytes readable on fd 0; absent means EOF at once. */
  readonly stdin?: Uint8Array;
  /**
   * Receives stdout (1) and stderr (2) bytes synchronously, in write order. The chunk may be a view of linear
   * memory that is only valid during the call: copy it to keep it.
   */
  readonly output: (fd: 1 | 2, chunk: Uint8Array) => void;
  /** Total stdout+stderr bytes allowed; the write that crosses it delivers what fits and ends the instance. */
  readonly outputLimit?: number;
  /** Called at the start of every host call (the engine samples memory size there). */
  readonly onCall?: () => void;
  /** Cap on files and directories the module may hold open at once, to protect the host's fd table. */
  readonly maxOpenFds?: number;
  /**
   * Called when proc_exit runs or the output limit is hit, just before the sentinel is thrown. A module built with
   * exception handling could catch the sentinel and keep computing; this lets the engine stop it from outside.
   */
  readonly onEnd?: (ending: WasiEnding) => void;
}

/** Thrown by proc_exit. Private to the runner: the engine catches it to end the instance with this code. */
export class WasiExit {
  constructor(readonly code: number) {}
}

/** Thrown when output exceeds `outputLimit`. */
export class WasiOutputLimit {
  constructor(readonly limit: number) {}
}

export type WasiEnding = WasiExit | WasiOutputLimit;

interface FdBase {
  rightsBase: bigint;
  rightsInheriting: bigint;
  fdflags: number;
}
interface StdioFd extends FdBase {
  readonly kind: 'stdio';
  readonly stream: 0 | 1 | 2;
}
interface FileFd extends FdBase {
  readonly kind: 'file';
  readonly hostFd: number;
  readonly readonly: boolean;
  position: number;
}
interface DirEntry {
  readonly name: Uint8Array;
  readonly ino: bigint;
  readonly type: number;
}
interface DirFd extends FdBase {
  readonly kind: 'dir';
  readonly loc: DirLocation;
  readonly readonly: boolean;
  /** Set on preopened directories: the name fd_prestat_dir_name reports. */
  readonly preopen?: Uint8Array;
  listing?: DirEntry[];
}
type FdEntry = StdioFd | FileFd | DirFd;

type HostFunction = (...args: never[]) => number | undefined;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

const STDIO_BASE_RIGHTS = Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;
const RANDOM_CHUNK = 65536;
const SLEEP_SLICE_MS = 100;
const DIRENT_HEADER = 24;
const FILESTAT_SIZE = 64;

function nsNow(): bigint {
  return process.hrtime.bigint();
}

function realtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

function cputimeNs(): bigint {
  const usage = process.cpuUsage();
  return BigInt(usage.user + usage.system) * 1000n;
}

function toOffset(value: bigint): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new WasiErrno(Errno.INVAL);
  return Number(value);
}

function fail(errno: number): never {
  throw new WasiErrno(errno);
}

export class WasiHost {
  /** The `wasi_snapshot_preview1` import object. */
  readonly wasiImport: Record<Preview1Function, HostFunction>;

  private memory: WasmMemory | undefined;
  private readonly fds = new Map<number, FdEntry>();
  private args: Uint8Array[] = [];
  private env: Uint8Array[] = [];
  private stdin: Uint8Array = new Uint8Array(0);
  private stdinPosition = 0;
  private outputLimit: number | undefined;
  private outputUsed = 0;
  private ending: WasiEnding | undefined;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly options: WasiHostOptions) {
    this.configure(options);
    this.wasiImport = this.buildImports();
  }

  /**
   * Replaces the per-run part of the host (argv, environ, preopens, stdin, output limit). The engine creates
   * instances ahead of requests (warm pools) with an empty run, then configures the real one just before
   * `_start`; libc reads argv and environ only from `_start` on, so the module cannot tell the difference.
   * Throws (without changing anything) when a preopen does not resolve to a directory.
   */
  configure(run: WasiRunOptions): void {
    const preopens: DirFd[] = [];
    for (const preopen of run.preopens ?? []) {
      // Resolved once here so every later check compares real paths with a real root.
      const root = fs.realpathSync.native(preopen.host);
      if (!fs.statSync(root).isDirectory()) throw new Error(`preopen ${preopen.host} is not a directory`);
      preopens.push({
        kind: 'dir',
        loc: { root, rel: [] },
        readonly: preopen.readonly,
        preopen: encoder.encode(preopen.guest),
        rightsBase: DIR_RIGHTS,
        rightsInheriting: DIR_RIGHTS | FILE_RIGHTS,
        fdflags: 0,
      });
    }
    this.close();
    this.args = run.args.map((arg) => encoder.encode(`${arg}\0`));
    this.env = Object.entries(run.env).map(([k, v]) => encoder.encode(`${k}=${v}\0`));
    this.stdin = run.stdin ?? new Uint8Array(0);
    this.stdinPosition = 0;
    this.outputLimit = run.outputLimit;
    this.outputUsed = 0;
    this.fds.set(0, { kind: 'stdio', stream: 0, rightsBase: STDIO_BASE_RIGHTS | Rights.FD_READ, rightsInheriting: 0n, fdflags: 0 });
    this.fds.set(1, { kind: 'stdio', stream: 1, rightsBase: STDIO_BASE_RIGHTS | Rights.FD_WRITE, rightsInheriting: 0n, fdflags: Fdflags.APPEND });
    this.fds.set(2, { kind: 'stdio', stream: 2, rightsBase: STDIO_BASE_RIGHTS | Rights.FD_WRITE, rightsInheriting: 0n, fdflags: Fdflags.APPEND });
    let fd = 3;
    for (const dir of preopens) this.fds.set(fd++, dir);
  }

  /** Binds the instance's exported `memory`; call after instantiation, before `_start`. */
  initialize(instance: WasmInstance): void {
    const memory = instance.exports.memory;
    if (memory instanceof wasmApi().Memory) this.memory = memory;
  }

  /** For hosts driven without an instance (tests, embedders with imported memory). */
  bindMemory(memory: WasmMemory): void {
    this.memory = memory;
  }

  /** Set once proc_exit ran or the output limit was hit, even if the module swallowed the throw. */
  get ended(): WasiEnding | undefined {
    return this.ending;
  }

  /** Closes every host file descriptor the module opened. */
  close(): void {
    for (const entry of this.fds.values()) {
      if (entry.kind === 'file') {
        try {
          fs.closeSync(entry.hostFd);
        } catch {
          // Already closed by the OS or never fully opened: nothing left to release.
        }
      }
    }
    this.fds.clear();
  }

  // ---- plumbing -------------------------------------------------------------------------------------------

  private buildImports(): Record<Preview1Function, HostFunction> {
    const impl: Partial<Record<Preview1Function, HostFunction>> = {
      args_get: (argv: number, buf: number) => this.writeStrings(this.args, argv, buf),
      args_sizes_get: (count: number, size: number) => this.writeSizes(this.args, count, size),
      environ_get: (environ: number, buf: number) => this.writeStrings(this.env, environ, buf),
      environ_sizes_get: (count: number, size: number) => this.writeSizes(this.env, count, size),
      clock_res_get: (id: number, out: number) => this.clockResGet(id, out),
      clock_time_get: (id: number, _precision: bigint, out: number) => this.clockTimeGet(id, out),
      fd_advise: (fd: number) => (this.file(fd, Rights.FD_ADVISE), Errno.SUCCESS),
      fd_allocate: (fd: number, offset: bigint, len: bigint) => this.fdAllocate(fd, offset, len),
      fd_close: (fd: number) => this.fdClose(fd),
      fd_datasync: (fd: number) => this.fdSync(fd, true),
      fd_fdstat_get: (fd: number, out: number) => this.fdFdstatGet(fd, out),
      fd_fdstat_set_flags: (fd: number, flags: number) => this.fdFdstatSetFlags(fd, flags),
      fd_fdstat_set_rights: (fd: number, base: bigint, inheriting: bigint) => this.fdFdstatSetRights(fd, base, inheriting),
      fd_filestat_get: (fd: number, out: number) => this.fdFilestatGet(fd, out),
      fd_filestat_set_size: (fd: number, size: bigint) => this.fdFilestatSetSize(fd, size),
      fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint, flags: number) => this.fdFilestatSetTimes(fd, atim, mtim, flags),
      fd_pread: (fd: number, iovs: number, n: number, offset: bigint, out: number) => this.fdPread(fd, iovs, n, offset, out),
      fd_prestat_get: (fd: number, out: number) => this.fdPrestatGet(fd, out),
      fd_prestat_dir_name: (fd: number, buf: number, len: number) => this.fdPrestatDirName(fd, buf, len),
      fd_pwrite: (fd: number, iovs: number, n: number, offset: bigint, out: number) => this.fdPwrite(fd, iovs, n, offset, out),
      fd_read: (fd: number, iovs: number, n: number, out: number) => this.fdRead(fd, iovs, n, out),
      fd_readdir: (fd: number, buf: number, len: number, cookie: bigint, out: number) => this.fdReaddir(fd, buf, len, cookie, out),
      fd_renumber: (from: number, to: number) => this.fdRenumber(from, to),
      fd_seek: (fd: number, offset: bigint, whence: number, out: number) => this.fdSeek(fd, offset, whence, out),
      fd_sync: (fd: number) => this.fdSync(fd, false),
      fd_tell: (fd: number, out: number) => this.fdSeek(fd, 0n, Whence.CUR, out, Rights.FD_TELL),
      fd_write: (fd: number, iovs: number, n: number, out: number) => this.fdWrite(fd, iovs, n, out),
      path_create_directory: (fd: number, p: number, len: number) => this.pathCreateDirectory(fd, p, len),
      path_filestat_get: (fd: number, flags: number, p: number, len: number, out: number) => this.pathFilestatGet(fd, flags, p, len, out),
      path_filestat_set_times: (fd: number, flags: number, p: number, len: number, atim: bigint, mtim: bigint, fst: number) =>
        this.pathFilestatSetTimes(fd, flags, p, len, atim, mtim, fst),
      path_open: (
        fd: number,
        dirflags: number,
        p: number,
        len: number,
        oflags: number,
        base: bigint,
        inheriting: bigint,
        fdflags: number,
        out: number,
      ) => this.pathOpen(fd, dirflags, p, len, oflags, base, inheriting, fdflags, out),
      path_readlink: (fd: number, p: number, len: number, buf: number, bufLen: number, out: number) =>
        this.pathReadlink(fd, p, len, buf, bufLen, out),
      path_remove_directory: (fd: number, p: number, len: number) => this.pathRemove(fd, p, len, true),
      path_rename: (fd: number, p: number, len: number, newFd: number, np: number, nlen: number) =>
        this.pathRename(fd, p, len, newFd, np, nlen),
      path_unlink_file: (fd: number, p: number, len: number) => this.pathRemove(fd, p, len, false),
      poll_oneoff: (inPtr: number, outPtr: number, n: number, nevents: number) => this.pollOneoff(inPtr, outPtr, n, nevents),
      proc_exit: (code: number) => this.procExit(code),
      random_get: (buf: number, len: number) => this.randomGet(buf, len),
      sched_yield: () => Errno.SUCCESS,
    };
    const imports = {} as Record<Preview1Function, HostFunction>;
    for (const name of PREVIEW1_FUNCTIONS) {
      const fn = impl[name];
      imports[name] = fn === undefined ? this.wrap(() => Errno.NOSYS) : this.wrap(fn);
    }
    return imports;
  }

  private wrap(fn: HostFunction): HostFunction {
    return (...args: never[]) => {
      // A module built with exception handling can catch our sentinel; every later call re-raises it.
      if (this.ending !== undefined) throw this.ending;
      this.options.onCall?.();
      try {
        return fn(...args);
      } catch (err) {
        if (err instanceof WasiErrno) return err.errno;
        if (isNodeError(err) && err.syscall !== undefined) return errnoFromNodeError(err);
        throw err;
      }
    };
  }

  private end(ending: WasiEnding): never {
    this.ending = ending;
    this.options.onEnd?.(ending);
    throw ending;
  }

  private mem(): { dv: DataView; u8: Uint8Array } {
    const memory = this.memory;
    if (memory === undefined) throw new Error('the module exports no memory named "memory"');
    const buffer = memory.buffer;
    return { dv: new DataView(buffer), u8: new Uint8Array(buffer) };
  }

  /** Bounds check: typed-array views clamp silently, so an out-of-range pointer must fail here, with EFAULT. */
  private range(u8: Uint8Array, ptr: number, len: number): void {
    if (ptr + len > u8.length) fail(Errno.FAULT);
  }

  private u32(ptr: number, value: number): void {
    const { dv, u8 } = this.mem();
    this.range(u8, ptr >>> 0, 4);
    dv.setUint32(ptr >>> 0, value >>> 0, true);
  }

  private u64(ptr: number, value: bigint): void {
    const { dv, u8 } = this.mem();
    this.range(u8, ptr >>> 0, 8);
    dv.setBigUint64(ptr >>> 0, BigInt.asUintN(64, value), true);
  }

  private readString(ptr: number, len: number): string {
    const { u8 } = this.mem();
    const start = ptr >>> 0;
    const length = len >>> 0;
    this.range(u8, start, length);
    try {
      return decoder.decode(u8.subarray(start, start + length));
    } catch {
      return fail(Errno.ILSEQ);
    }
  }

  /** Reads an iovec/ciovec array as views into linear memory. */
  private iovecs(ptr: number, count: number): Uint8Array[] {
    const { dv, u8 } = this.mem();
    const base = ptr >>> 0;
    const n = count >>> 0;
    this.range(u8, base, n * 8);
    const views: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const buf = dv.getUint32(base + i * 8, true);
      const len = dv.getUint32(base + i * 8 + 4, true);
      this.range(u8, buf, len);
      views.push(u8.subarray(buf, buf + len));
    }
    return views;
  }

  private entry(fd: number): FdEntry {
    return this.fds.get(fd >>> 0) ?? fail(Errno.BADF);
  }

  private need(entry: FdEntry, rights: bigint): void {
    if ((entry.rightsBase & rights) !== rights) fail(Errno.NOTCAPABLE);
  }

  private file(fd: number, rights: bigint): FileFd {
    const entry = this.entry(fd);
    if (entry.kind === 'dir') fail(Errno.ISDIR);
    if (entry.kind !== 'file') fail(Errno.SPIPE);
    this.need(entry, rights);
    return entry;
  }

  private dir(fd: number, rights: bigint): DirFd {
    const entry = this.entry(fd);
    if (entry.kind !== 'dir') fail(Errno.NOTDIR);
    this.need(entry, rights);
    return entry;
  }

  private writable(dir: DirFd): void {
    if (dir.readonly) fail(Errno.ROFS);
  }

  private ensureFdCapacity(): void {
    const max = this.options.maxOpenFds ?? 256;
    let open = 0;
    for (const e of this.fds.values()) if (e.kind === 'file' || (e.kind === 'dir' && e.preopen === undefined)) open++;
    if (open >= max) fail(Errno.MFILE);
  }

  private allocateFd(entry: FdEntry): number {
    this.ensureFdCapacity();
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, entry);
    return fd;
  }

  private writeFilestat(ptr: number, stat: fs.BigIntStats | undefined, filetype: number): void {
    const { dv, u8 } = this.mem();
    const at = ptr >>> 0;
    this.range(u8, at, FILESTAT_SIZE);
    u8.fill(0, at, at + FILESTAT_SIZE);
    dv.setUint8(at + 16, filetype);
    if (stat === undefined) return;
    dv.setBigUint64(at, BigInt.asUintN(64, stat.dev), true);
    dv.setBigUint64(at + 8, BigInt.asUintN(64, stat.ino), true);
    dv.setBigUint64(at + 24, BigInt.asUintN(64, stat.nlink), true);
    dv.setBigUint64(at + 32, BigInt.asUintN(64, stat.size), true);
    dv.setBigUint64(at + 40, BigInt.asUintN(64, stat.atimeNs), true);
    dv.setBigUint64(at + 48, BigInt.asUintN(64, stat.mtimeNs), true);
    dv.setBigUint64(at + 56, BigInt.asUintN(64, stat.ctimeNs), true);
  }

  // ---- args, environ, clocks, random, process ---------------------------------------------------------------

  private writeSizes(strings: readonly Uint8Array[], countPtr: number, sizePtr: number): number {
    this.u32(countPtr, strings.length);
    this.u32(sizePtr, strings.reduce((sum, s) => sum + s.length, 0));
    return Errno.SUCCESS;
  }

  private writeStrings(strings: readonly Uint8Array[], pointers: number, buf: number): number {
    const { dv, u8 } = this.mem();
    let at = buf >>> 0;
    const table = pointers >>> 0;
    this.range(u8, table, strings.length * 4);
    for (const [i, s] of strings.entries()) {
      this.range(u8, at, s.length);
      dv.setUint32(table + i * 4, at, true);
      u8.set(s, at);
      at += s.length;
    }
    return Errno.SUCCESS;
  }

  private clockNow(id: number): bigint {
    switch (id) {
      case Clockid.REALTIME:
        return realtimeNs();
      case Clockid.MONOTONIC:
        return nsNow();
      case Clockid.PROCESS_CPUTIME:
      case Clockid.THREAD_CPUTIME:
        // Node offers no per-thread CPU clock before v23; process time is the honest upper bound.
        return cputimeNs();
      default:
        return fail(Errno.INVAL);
    }
  }

  private clockResGet(id: number, out: number): number {
    this.clockNow(id);
    this.u64(out, id === Clockid.MONOTONIC ? 1n : 1000n);
    return Errno.SUCCESS;
  }

  private clockTimeGet(id: number, out: number): number {
    this.u64(out, this.clockNow(id));
    return Errno.SUCCESS;
  }

  private randomGet(buf: number, len: number): number {
    const { u8 } = this.mem();
    const start = buf >>> 0;
    const length = len >>> 0;
    this.range(u8, start, length);
    // Filled through a scratch buffer: getRandomValues-style APIs cap a call at 64 KiB and refuse shared memory.
    const scratch = new Uint8Array(Math.min(length, RANDOM_CHUNK));
    for (let done = 0; done < length; done += RANDOM_CHUNK) {
      const n = Math.min(RANDOM_CHUNK, length - done);
      randomFillSync(scratch, 0, n);
      u8.set(n === scratch.length ? scratch : scratch.subarray(0, n), start + done);
    }
    return Errno.SUCCESS;
  }

  private procExit(code: number): never {
    return this.end(new WasiExit(code >>> 0));
  }

  private sleepUntil(deadline: bigint): void {
    // Sliced so that worker.terminate() gets a JS boundary to act on even for a sleep of hours.
    for (;;) {
      const remainingMs = Number(deadline - nsNow()) / 1e6;
      if (remainingMs <= 0) return;
      Atomics.wait(this.sleeper, 0, 0, Math.min(remainingMs, SLEEP_SLICE_MS));
    }
  }

  private pollOneoff(inPtr: number, outPtr: number, count: number, neventsPtr: number): number {
    const n = count >>> 0;
    if (n === 0) return Errno.INVAL;
    const { dv, u8 } = this.mem();
    const subs = inPtr >>> 0;
    const evs = outPtr >>> 0;
    this.range(u8, subs, n * 48);
    this.range(u8, evs, n * 32);
    const now = nsNow();
    const ready: { userdata: bigint; error: number; type: number; nbytes: bigint }[] = [];
    const clocks: { userdata: bigint; deadline: bigint }[] = [];
    for (let i = 0; i < n; i++) {
      const at = subs + i * 48;
      const userdata = dv.getBigUint64(at, true);
      const tag = dv.getUint8(at + 8);
      if (tag === Eventtype.CLOCK) {
        const id = dv.getUint32(at + 16, true);
        const timeout = dv.getBigUint64(at + 24, true);
        const absolute = (dv.getUint16(at + 40, true) & Subclockflags.ABSTIME) !== 0;
        let deadline: bigint;
        try {
          deadline = absolute ? now + (timeout - this.clockNow(id)) : now + timeout;
        } catch (err) {
          if (!(err instanceof WasiErrno)) throw err;
          ready.push({ userdata, error: err.errno, type: tag, nbytes: 0n });
          continue;
        }
        clocks.push({ userdata, deadline });
      } else if (tag === Eventtype.FD_READ || tag === Eventtype.FD_WRITE) {
        // Nothing here ever blocks (stdin is a buffer, files are files), so fd subscriptions are ready at once.
        const entry = this.fds.get(dv.getUint32(at + 16, true));
        let nbytes = 0n;
        if (entry?.kind === 'stdio' && entry.stream === 0 && tag === Eventtype.FD_READ) {
          nbytes = BigInt(this.stdin.length - this.stdinPosition);
        }
        ready.push({ userdata, error: entry === undefined ? Errno.BADF : Errno.SUCCESS, type: tag, nbytes });
      } else {
        ready.push({ userdata, error: Errno.INVAL, type: tag, nbytes: 0n });
      }
    }
    if (ready.length === 0 && clocks.length > 0) {
      this.sleepUntil(clocks.reduce((min, c) => (c.deadline < min ? c.deadline : min), clocks[0]!.deadline));
    }
    const after = nsNow();
    for (const c of clocks) {
      if (c.deadline <= after) ready.push({ userdata: c.userdata, error: Errno.SUCCESS, type: Eventtype.CLOCK, nbytes: 0n });
    }
    for (const [i, ev] of ready.entries()) {
      const at = evs + i * 32;
      u8.fill(0, at, at + 32);
      dv.setBigUint64(at, ev.userdata, true);
      dv.setUint16(at + 8, ev.error, true);
      dv.setUint8(at + 10, ev.type);
      dv.setBigUint64(at + 16, ev.nbytes, true);
    }
    this.u32(neventsPtr, ready.length);
    return Errno.SUCCESS;
  }

  // ---- fd operations ------------------------------------------------------------------------------------------

  private fdWrite(fd: number, iovs: number, count: number, out: number): number {
    const entry = this.entry(fd);
    const views = this.iovecs(iovs, count);
    let written = 0;
    if (entry.kind === 'stdio') {
      if (entry.stream === 0) return Errno.BADF;
      for (const view of views) {
        if (view.length === 0) continue;
        this.emit(entry.stream, view);
        written += view.length;
      }
    } else if (entry.kind === 'file') {
      this.need(entry, Rights.FD_WRITE);
      if ((entry.fdflags & Fdflags.APPEND) !== 0) entry.position = Number(fs.fstatSync(entry.hostFd, { bigint: true }).size);
      for (const view of views) {
        const n = fs.writeSync(entry.hostFd, view, 0, view.length, entry.position);
        entry.position += n;
        written += n;
        if (n < view.length) break;
      }
    } else {
      return Errno.ISDIR;
    }
    this.u32(out, written);
    return Errno.SUCCESS;
  }

  private emit(stream: 1 | 2, view: Uint8Array): void {
    const limit = this.outputLimit;
    if (limit !== undefined && limit > 0 && this.outputUsed + view.length > limit) {
      const fits = limit - this.outputUsed;
      if (fits > 0) this.options.output(stream, view.subarray(0, fits));
      this.outputUsed = limit;
      this.end(new WasiOutputLimit(limit));
    }
    this.outputUsed += view.length;
    this.options.output(stream, view);
  }

  private fdRead(fd: number, iovs: number, count: number, out: number): number {
    const entry = this.entry(fd);
    const views = this.iovecs(iovs, count);
    let total = 0;
    if (entry.kind === 'stdio') {
      if (entry.stream !== 0) return Errno.BADF;
      for (const view of views) {
        const n = Math.min(view.length, this.stdin.length - this.stdinPosition);
        view.set(this.stdin.subarray(this.stdinPosition, this.stdinPosition + n));
        this.stdinPosition += n;
        total += n;
        if (n < view.length) break;
      }
    } else if (entry.kind === 'file') {
      this.need(entry, Rights.FD_READ);
      total = this.readAt(entry, views, entry.position);
      entry.position += total;
    } else {
      return Errno.ISDIR;
    }
    this.u32(out, total);
    return Errno.SUCCESS;
  }

  private readAt(entry: FileFd, views: readonly Uint8Array[], position: number): number {
    let total = 0;
    for (const view of views) {
      if (view.length === 0) continue;
      const n = fs.readSync(entry.hostFd, view, 0, view.length, position + total);
      total += n;
      if (n < view.length) break;
    }
    return total;
  }

  private fdPread(fd: number, iovs: number, count: number, offset: bigint, out: number): number {
    const entry = this.file(fd, Rights.FD_READ | Rights.FD_SEEK);
    const total = this.readAt(entry, this.iovecs(iovs, count), toOffset(offset));
    this.u32(out, total);
    return Errno.SUCCESS;
  }

  private fdPwrite(fd: number, iovs: number, count: number, offset: bigint, out: number): number {
    const entry = this.file(fd, Rights.FD_WRITE | Rights.FD_SEEK);
    let position = toOffset(offset);
    let written = 0;
    for (const view of this.iovecs(iovs, count)) {
      const n = fs.writeSync(entry.hostFd, view, 0, view.length, position);
      position += n;
      written += n;
      if (n < view.length) break;
    }
    this.u32(out, written);
    return Errno.SUCCESS;
  }

  private fdSeek(fd: number, offset: bigint, whence: number, out: number, right: bigint = Rights.FD_SEEK): number {
    const entry = this.entry(fd);
    if (entry.kind === 'stdio') return Errno.SPIPE;
    if (entry.kind === 'dir') return Errno.BADF;
    // A plain tell (offset 0 from CUR) needs only FD_TELL, as in the spec.
    this.need(entry, offset === 0n && whence === Whence.CUR ? Rights.FD_TELL : right);
    let base: bigint;
    if (whence === Whence.SET) base = 0n;
    else if (whence === Whence.CUR) base = BigInt(entry.position);
    else if (whence === Whence.END) base = fs.fstatSync(entry.hostFd, { bigint: true }).size;
    else return Errno.INVAL;
    const next = base + offset;
    if (next < 0n) return Errno.INVAL;
    entry.position = toOffset(next);
    this.u64(out, next);
    return Errno.SUCCESS;
  }

  private fdClose(fd: number): number {
    const entry = this.entry(fd);
    this.fds.delete(fd >>> 0);
    if (entry.kind === 'file') fs.closeSync(entry.hostFd);
    return Errno.SUCCESS;
  }

  private fdRenumber(from: number, to: number): number {
    const entry = this.entry(from);
    const target = this.entry(to);
    if (target.kind === 'file' && target !== entry) fs.closeSync(target.hostFd);
    this.fds.set(to >>> 0, entry);
    this.fds.delete(from >>> 0);
    return Errno.SUCCESS;
  }

  private fdSync(fd: number, dataOnly: boolean): number {
    const entry = this.entry(fd);
    if (entry.kind === 'file') {
      this.need(entry, dataOnly ? Rights.FD_DATASYNC : Rights.FD_SYNC);
      if (dataOnly) fs.fdatasyncSync(entry.hostFd);
      else fs.fsyncSync(entry.hostFd);
    }
    return Errno.SUCCESS;
  }

  private fdAllocate(fd: number, offset: bigint, len: bigint): number {
    const entry = this.file(fd, Rights.FD_ALLOCATE);
    const end = toOffset(offset) + toOffset(len);
    if (Number(fs.fstatSync(entry.hostFd, { bigint: true }).size) < end) fs.ftruncateSync(entry.hostFd, end);
    return Errno.SUCCESS;
  }

  private fdFdstatGet(fd: number, out: number): number {
    const entry = this.entry(fd);
    const { dv, u8 } = this.mem();
    const at = out >>> 0;
    this.range(u8, at, 24);
    u8.fill(0, at, at + 24);
    let filetype: number;
    if (entry.kind === 'dir') filetype = Filetype.DIRECTORY;
    else if (entry.kind === 'file') filetype = filetypeOf(fs.fstatSync(entry.hostFd, { bigint: true }));
    // stdio is a pipe to the runner, as under `wasmedge run ... | cat`: not a tty, so libc buffers fully.
    else filetype = Filetype.UNKNOWN;
    dv.setUint8(at, filetype);
    dv.setUint16(at + 2, entry.fdflags, true);
    dv.setBigUint64(at + 8, entry.rightsBase, true);
    dv.setBigUint64(at + 16, entry.rightsInheriting, true);
    return Errno.SUCCESS;
  }

  private fdFdstatSetFlags(fd: number, flags: number): number {
    const entry = this.entry(fd);
    this.need(entry, Rights.FD_FDSTAT_SET_FLAGS);
    if (entry.kind === 'file') {
      if ((flags & Fdflags.APPEND) !== 0 && entry.readonly) return Errno.ROFS;
      entry.fdflags = flags & (Fdflags.APPEND | Fdflags.NONBLOCK);
    } else {
      entry.fdflags = (entry.fdflags & Fdflags.APPEND) | (flags & Fdflags.NONBLOCK);
    }
    return Errno.SUCCESS;
  }

  private fdFdstatSetRights(fd: number, base: bigint, inheriting: bigint): number {
    const entry = this.entry(fd);
    // Rights may only shrink.
    if ((base & ~entry.rightsBase) !== 0n || (inheriting & ~entry.rightsInheriting) !== 0n) return Errno.NOTCAPABLE;
    entry.rightsBase = base;
    entry.rightsInheriting = inheriting;
    return Errno.SUCCESS;
  }

  private fdFilestatGet(fd: number, out: number): number {
    const entry = this.entry(fd);
    if (entry.kind === 'stdio') {
      this.writeFilestat(out, undefined, Filetype.UNKNOWN);
      return Errno.SUCCESS;
    }
    this.need(entry, Rights.FD_FILESTAT_GET);
    const stat =
      entry.kind === 'file' ? fs.fstatSync(entry.hostFd, { bigint: true }) : fs.statSync(hostPathOf(entry.loc), { bigint: true });
    this.writeFilestat(out, stat, filetypeOf(stat));
    return Errno.SUCCESS;
  }

  private fdFilestatSetSize(fd: number, size: bigint): number {
    const entry = this.file(fd, Rights.FD_FILESTAT_SET_SIZE);
    fs.ftruncateSync(entry.hostFd, toOffset(size));
    return Errno.SUCCESS;
  }

  private times(current: fs.BigIntStats, atim: bigint, mtim: bigint, flags: number): [Date | number, Date | number] {
    if ((flags & Fstflags.ATIM && flags & Fstflags.ATIM_NOW) || (flags & Fstflags.MTIM && flags & Fstflags.MTIM_NOW)) {
      fail(Errno.INVAL);
    }
    const nowS = Date.now() / 1000;
    const pick = (set: number, now: number, value: bigint, old: bigint): number =>
      flags & now ? nowS : flags & set ? Number(value) / 1e9 : Number(old) / 1e9;
    return [pick(Fstflags.ATIM, Fstflags.ATIM_NOW, atim, current.atimeNs), pick(Fstflags.MTIM, Fstflags.MTIM_NOW, mtim, current.mtimeNs)];
  }

  private fdFilestatSetTimes(fd: number, atim: bigint, mtim: bigint, flags: number): number {
    const entry = this.entry(fd);
    this.need(entry, Rights.FD_FILESTAT_SET_TIMES);
    if (entry.kind === 'stdio') return Errno.BADF;
    if (entry.readonly) return Errno.ROFS;
    if (entry.kind === 'file') {
      const [a, m] = this.times(fs.fstatSync(entry.hostFd, { bigint: true }), atim, mtim, flags);
      fs.futimesSync(entry.hostFd, a, m);
    } else {
      const hostPath = hostPathOf(entry.loc);
      const [a, m] = this.times(fs.statSync(hostPath, { bigint: true }), atim, mtim, flags);
      fs.utimesSync(hostPath, a, m);
    }
    return Errno.SUCCESS;
  }

  private fdPrestatGet(fd: number, out: number): number {
    const entry = this.entry(fd);
    if (entry.kind !== 'dir' || entry.preopen === undefined) return Errno.BADF;
    this.u32(out, 0); // tag 0: directory
    this.u32((out >>> 0) + 4, entry.preopen.length);
    return Errno.SUCCESS;
  }

  private fdPrestatDirName(fd: number, buf: number, len: number): number {
    const entry = this.entry(fd);
    if (entry.kind !== 'dir' || entry.preopen === undefined) return Errno.BADF;
    if ((len >>> 0) < entry.preopen.length) return Errno.NAMETOOLONG;
    const { u8 } = this.mem();
    this.range(u8, buf >>> 0, entry.preopen.length);
    u8.set(entry.preopen, buf >>> 0);
    return Errno.SUCCESS;
  }

  private listing(entry: DirFd): DirEntry[] {
    const hostPath = hostPathOf(entry.loc);
    const self = fs.statSync(hostPath, { bigint: true });
    // `..` of a preopen root reports the root itself: the host directory above it is none of the module's business.
    const parentIno =
      entry.loc.rel.length === 0 ? self.ino : fs.statSync(path.dirname(hostPath), { bigint: true }).ino;
    const result: DirEntry[] = [
      { name: encoder.encode('.'), ino: self.ino, type: Filetype.DIRECTORY },
      { name: encoder.encode('..'), ino: parentIno, type: Filetype.DIRECTORY },
    ];
    const names = fs.readdirSync(hostPath, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const dirent of names) {
      const stat = fs.lstatSync(path.join(hostPath, dirent.name), { bigint: true, throwIfNoEntry: false });
      if (stat === undefined) continue;
      result.push({ name: encoder.encode(dirent.name), ino: stat.ino, type: filetypeOf(dirent) });
    }
    return result;
  }

  private fdReaddir(fd: number, buf: number, bufLen: number, cookie: bigint, out: number): number {
    const entry = this.dir(fd, Rights.FD_READDIR);
    if (cookie === 0n || entry.listing === undefined) entry.listing = this.listing(entry);
    const { dv, u8 } = this.mem();
    const start = buf >>> 0;
    const capacity = bufLen >>> 0;
    this.range(u8, start, capacity);
    let used = 0;
    const list = entry.listing;
    for (let i = Number(cookie > BigInt(list.length) ? BigInt(list.length) : cookie); i < list.length; i++) {
      const item = list[i]!;
      const record = new Uint8Array(DIRENT_HEADER + item.name.length);
      const rv = new DataView(record.buffer);
      rv.setBigUint64(0, BigInt(i + 1), true);
      rv.setBigUint64(8, item.ino, true);
      rv.setUint32(16, item.name.length, true);
      rv.setUint8(20, item.type);
      record.set(item.name, DIRENT_HEADER);
      const n = Math.min(record.length, capacity - used);
      u8.set(record.subarray(0, n), start + used);
      used += n;
      // A truncated entry fills the buffer exactly, which tells libc to call again with a larger one.
      if (used === capacity) break;
    }
    dv.setUint32(out >>> 0, used, true);
    return Errno.SUCCESS;
  }

  // ---- path operations ------------------------------------------------------------------------------------------

  private pathOpen(
    fd: number,
    dirflags: number,
    pathPtr: number,
    pathLen: number,
    oflags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    out: number,
  ): number {
    const dir = this.dir(fd, Rights.PATH_OPEN);
    const guestPath = this.readString(pathPtr, pathLen);
    const wantsWrite =
      (rightsBase & WRITE_RIGHTS & ~Rights.FD_DATASYNC) !== 0n ||
      (oflags & (Oflags.CREAT | Oflags.TRUNC)) !== 0 ||
      (fdflags & Fdflags.APPEND) !== 0;
    if (wantsWrite && dir.readonly) return Errno.ROFS;
    if ((oflags & Oflags.CREAT) !== 0) this.need(dir, Rights.PATH_CREATE_FILE);
    if ((oflags & Oflags.TRUNC) !== 0) this.need(dir, Rights.PATH_FILESTAT_SET_SIZE);
    if ((oflags & Oflags.DIRECTORY) !== 0 && (oflags & (Oflags.CREAT | Oflags.TRUNC)) !== 0) return Errno.INVAL;

    const follow = (dirflags & Lookupflags.SYMLINK_FOLLOW) !== 0;
    const target = follow ? resolveFollow(dir.loc, guestPath) : resolveNoFollow(dir.loc, guestPath);
    if (target.stat?.isSymbolicLink()) return Errno.LOOP; // no-follow open of a symlink, as O_NOFOLLOW
    if (target.stat !== undefined && (oflags & Oflags.CREAT) !== 0 && (oflags & Oflags.EXCL) !== 0) return Errno.EXIST;
    if (target.stat === undefined && (oflags & Oflags.CREAT) === 0) return Errno.NOENT;

    const base = rightsBase & dir.rightsInheriting;
    const inheriting = rightsInheriting & dir.rightsInheriting;
    if (target.stat?.isDirectory()) {
      if (wantsWrite) return Errno.ISDIR;
      const opened: DirFd = {
        kind: 'dir',
        loc: { root: dir.loc.root, rel: locationOf(dir.loc.root, target.hostPath).rel },
        readonly: dir.readonly,
        rightsBase: base & DIR_RIGHTS,
        rightsInheriting: inheriting,
        fdflags: 0,
      };
      this.u32(out, this.allocateFd(opened));
      return Errno.SUCCESS;
    }
    if ((oflags & Oflags.DIRECTORY) !== 0) return Errno.NOTDIR;

    const read = (base & (Rights.FD_READ | Rights.FD_READDIR)) !== 0n;
    const write = (base & (Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)) !== 0n;
    const c = fs.constants;
    let flags = write ? (read ? c.O_RDWR : c.O_WRONLY) : c.O_RDONLY;
    if ((oflags & Oflags.CREAT) !== 0) flags |= c.O_CREAT;
    if ((oflags & Oflags.EXCL) !== 0) flags |= c.O_EXCL;
    if ((oflags & Oflags.TRUNC) !== 0) flags |= c.O_TRUNC;
    // The path is already real; O_NOFOLLOW makes a symlink swapped in since the check fail instead of being
    // followed, and O_NONBLOCK keeps the open itself from hanging on a FIFO (refused just below).
    flags |= c.O_NOFOLLOW | c.O_NONBLOCK;
    const entry: Omit<FileFd, 'hostFd'> = {
      kind: 'file',
      readonly: dir.readonly,
      position: 0,
      rightsBase: base & FILE_RIGHTS,
      rightsInheriting: 0n,
      fdflags: fdflags & (Fdflags.APPEND | Fdflags.NONBLOCK),
    };
    this.ensureFdCapacity();
    const hostFd = fs.openSync(target.hostPath, flags, 0o644);
    // Non-regular files (FIFOs, devices) are refused: reading a FIFO or a tty would block the instance for good.
    if (!fs.fstatSync(hostFd).isFile()) {
      fs.closeSync(hostFd);
      return Errno.ACCES;
    }
    this.u32(out, this.allocateFd({ ...entry, hostFd }));
    return Errno.SUCCESS;
  }

  private pathFilestatGet(fd: number, flags: number, pathPtr: number, pathLen: number, out: number): number {
    const dir = this.dir(fd, Rights.PATH_FILESTAT_GET);
    const guestPath = this.readString(pathPtr, pathLen);
    const target =
      (flags & Lookupflags.SYMLINK_FOLLOW) !== 0 ? resolveFollow(dir.loc, guestPath) : resolveNoFollow(dir.loc, guestPath);
    if (target.stat === undefined) return Errno.NOENT;
    this.writeFilestat(out, target.stat, filetypeOf(target.stat));
    return Errno.SUCCESS;
  }

  private pathFilestatSetTimes(
    fd: number,
    flags: number,
    pathPtr: number,
    pathLen: number,
    atim: bigint,
    mtim: bigint,
    fst: number,
  ): number {
    const dir = this.dir(fd, Rights.PATH_FILESTAT_SET_TIMES);
    this.writable(dir);
    const guestPath = this.readString(pathPtr, pathLen);
    const target =
      (flags & Lookupflags.SYMLINK_FOLLOW) !== 0 ? resolveFollow(dir.loc, guestPath) : resolveNoFollow(dir.loc, guestPath);
    if (target.stat === undefined) return Errno.NOENT;
    const [a, m] = this.times(target.stat, atim, mtim, fst);
    if (target.stat.isSymbolicLink()) fs.lutimesSync(target.hostPath, a, m);
    else fs.utimesSync(target.hostPath, a, m);
    return Errno.SUCCESS;
  }

  private pathCreateDirectory(fd: number, pathPtr: number, pathLen: number): number {
    const dir = this.dir(fd, Rights.PATH_CREATE_DIRECTORY);
    this.writable(dir);
    const target = resolveNoFollow(dir.loc, this.readString(pathPtr, pathLen));
    if (target.stat !== undefined) return Errno.EXIST;
    fs.mkdirSync(target.hostPath);
    return Errno.SUCCESS;
  }

  private pathRemove(fd: number, pathPtr: number, pathLen: number, directory: boolean): number {
    const dir = this.dir(fd, directory ? Rights.PATH_REMOVE_DIRECTORY : Rights.PATH_UNLINK_FILE);
    this.writable(dir);
    const guestPath = this.readString(pathPtr, pathLen);
    const target = resolveNoFollow(dir.loc, guestPath);
    if (target.stat === undefined) return Errno.NOENT;
    if (target.hostPath === dir.loc.root) return directory ? Errno.BUSY : Errno.ISDIR;
    if (directory) {
      if (!target.stat.isDirectory()) return Errno.NOTDIR;
      fs.rmdirSync(target.hostPath);
    } else {
      if (target.stat.isDirectory()) return Errno.ISDIR;
      fs.unlinkSync(target.hostPath);
    }
    return Errno.SUCCESS;
  }

  private pathRename(fd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
    const from = this.dir(fd, Rights.PATH_RENAME_SOURCE);
    const to = this.dir(newFd, Rights.PATH_RENAME_TARGET);
    this.writable(from);
    this.writable(to);
    const source = resolveNoFollow(from.loc, this.readString(oldPtr, oldLen));
    const target = resolveNoFollow(to.loc, this.readString(newPtr, newLen));
    if (source.stat === undefined) return Errno.NOENT;
    if (source.hostPath === from.loc.root || target.hostPath === to.loc.root) return Errno.BUSY;
    fs.renameSync(source.hostPath, target.hostPath);
    return Errno.SUCCESS;
  }

  private pathReadlink(fd: number, pathPtr: number, pathLen: number, buf: number, bufLen: number, out: number): number {
    const dir = this.dir(fd, Rights.PATH_READLINK);
    const target = resolveNoFollow(dir.loc, this.readString(pathPtr, pathLen));
    if (target.stat === undefined) return Errno.NOENT;
    if (!target.stat.isSymbolicLink()) return Errno.INVAL;
    const link = encoder.encode(fs.readlinkSync(target.hostPath));
    const { u8 } = this.mem();
    const n = Math.min(link.length, bufLen >>> 0);
    this.range(u8, buf >>> 0, n);
    u8.set(link.subarray(0, n), buf >>> 0);
    this.u32(out, n);
    return Errno.SUCCESS;
  }
}
