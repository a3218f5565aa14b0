/**
 * The WASI host called directly, with crafted arguments no libc would send: proves confinement at the host
 * boundary itself (wasi-libc already refuses some paths before they reach the host), plus the non-fs calls.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  Errno,
  Fdflags,
  Filetype,
  Lookupflags,
  Oflags,
  PREVIEW1_FUNCTIONS,
  Rights,
  WasiExit,
  WasiHost,
  WasiOutputLimit,
  type WasiHostOptions,
  type WasmMemory,
  wasmApi,
} from '../runner-proto/src/wasi/index.js';

type Call = (...args: (number | bigint)[]) => number;

const READ = Rights.FD_READ | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_GET | Rights.FD_READDIR;
const WRITE = Rights.FD_WRITE | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_SET_SIZE;
const PREOPEN_FD = 3;

class Harness {
  readonly memory: WasmMemory;
  readonly host: WasiHost;
  readonly output: { fd: number; text: string }[] = [];
  private next = 1024;

  constructor(options: Partial<WasiHostOptions> = {}) {
    this.memory = new (wasmApi().Memory)({ initial: 2 });
    this.host = new WasiHost({
      args: ['prog.wasm'],
      env: {},
      output: (fd, chunk) => this.output.push({ fd, text: new TextDecoder().decode(chunk) }),
      ...options,
    });
    this.host.bindMemory(this.memory);
  }

  get dv(): DataView {
    return new DataView(this.memory.buffer);
  }

  get u8(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  call(name: (typeof PREVIEW1_FUNCTIONS)[number], ...args: (number | bigint)[]): number {
    return (this.host.wasiImport[name] as unknown as Call)(...args);
  }

  alloc(size: number): number {
    const at = this.next;
    this.next += (size + 7) & ~7;
    return at;
  }

  str(text: string): [number, number] {
    const bytes = new TextEncoder().encode(text);
    const at = this.alloc(bytes.length);
    this.u8.set(bytes, at);
    return [at, bytes.length];
  }

  open(
    path: string,
    o: { oflags?: number; rights?: bigint; inheriting?: bigint; fdflags?: number; follow?: boolean; dirfd?: number } = {},
  ): { errno: number; fd: number } {
    const [p, len] = this.str(path);
    const out = this.alloc(4);
    const errno = this.call(
      'path_open',
      o.dirfd ?? PREOPEN_FD,
      o.follow === false ? 0 : Lookupflags.SYMLINK_FOLLOW,
      p,
      len,
      o.oflags ?? 0,
      o.rights ?? READ,
      o.inheriting ?? 0n,
      o.fdflags ?? 0,
      out,
    );
    return { errno, fd: this.dv.getUint32(out, true) };
  }

  read(fd: number, max = 256): string {
    const buf = this.alloc(max);
    const iov = this.alloc(8);
    this.dv.setUint32(iov, buf, true);
    this.dv.setUint32(iov + 4, max, true);
    const nread = this.alloc(4);
    const errno = this.call('fd_read', fd, iov, 1, nread);
    if (errno !== 0) throw new Error(`fd_read errno ${errno}`);
    return new TextDecoder().decode(this.u8.slice(buf, buf + this.dv.getUint32(nread, true)));
  }

  write(fd: number, text: string): number {
    const [p, len] = this.str(text);
    const iov = this.alloc(8);
    this.dv.setUint32(iov, p, true);
    this.dv.setUint32(iov + 4, len, true);
    return this.call('fd_write', fd, iov, 1, this.alloc(4));
  }

  pathCall(name: 'path_create_directory' | 'path_unlink_file' | 'path_remove_directory', path: string): number {
    const [p, len] = this.str(path);
    return this.call(name, PREOPEN_FD, p, len);
  }

  rename(from: string, to: string): number {
    const [a, al] = this.str(from);
    const [b, bl] = this.str(to);
    return this.call('path_rename', PREOPEN_FD, a, al, PREOPEN_FD, b, bl);
  }

  filetype(path: string, follow: boolean): number | { errno: number } {
    const [p, len] = this.str(path);
    const buf = this.alloc(64);
    const errno = this.call('path_filestat_get', PREOPEN_FD, follow ? 1 : 0, p, len, buf);
    return errno === 0 ? this.dv.getUint8(buf + 16) : { errno };
  }
}

/** The sentinels are deliberately not Errors (no stack to capture), which ava's t.throws insists on. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

interface Tree {
  readonly top: string;
  readonly box: string;
  readonly outside: string;
}

function makeTree(t: ExecutionContext): Tree {
  const top = mkdtempSync(join(tmpdir(), 'wasi-host-'));
  t.teardown(() => rmSync(top, { recursive: true, force: true }));
  const box = join(top, 'box');
  const outside = join(top, 'outside');
  mkdirSync(join(box, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(top, 'x'), 'x outside\n');
  writeFileSync(join(outside, 'secret.txt'), 'secret\n');
  writeFileSync(join(box, 'in.txt'), 'inside\n');
  symlinkSync('in.txt', join(box, 'okl'));
  symlinkSync(join(outside, 'secret.txt'), join(box, 'link'));
  symlinkSync(outside, join(box, 'ldir'));
  symlinkSync(join(outside, 'new.txt'), join(box, 'dangling'));
  symlinkSync('sub/../../outside', join(box, 'sneaky'));
  return { top, box, outside };
}

function harness(t: ExecutionContext, readonly = false): { h: Harness; tree: Tree } {
  const tree = makeTree(t);
  const h = new Harness({ preopens: [{ guest: '/box', host: tree.box, readonly }] });
  t.teardown(() => h.host.close());
  return { h, tree };
}

test('path_open refuses every way out of the preopen with ENOTCAPABLE', (t) => {
  const { h } = harness(t);
  for (const path of [
    '../x',
    '..',
    '/etc/passwd',
    '/box/in.txt',
    'sub/../../x',
    'sub/../sub/../../x',
    './../x',
    'link',
    'ldir/secret.txt',
    'ldir',
    'sneaky/secret.txt',
  ]) {
    t.is(h.open(path).errno, Errno.NOTCAPABLE, path);
  }
  t.is(h.open('sub/../../x', { oflags: Oflags.CREAT, rights: WRITE }).errno, Errno.NOTCAPABLE);
});

test('path_open allows paths that stay inside, and reads them', (t) => {
  const { h } = harness(t);
  for (const path of ['in.txt', './in.txt', 'sub/../in.txt', 'okl', 'sub/./../okl']) {
    const { errno, fd } = h.open(path);
    t.is(errno, 0, path);
    t.is(h.read(fd), 'inside\n', path);
    t.is(h.call('fd_close', fd), 0);
  }
  // `..` is resolved lexically, so `ldir/..` is the preopen itself, never the symlink target's parent.
  const lexical = h.open('ldir/../in.txt');
  t.is(lexical.errno, 0);
  t.is(h.read(lexical.fd), 'inside\n');
  const dir = h.open('sub', { oflags: Oflags.DIRECTORY, rights: Rights.PATH_OPEN | Rights.FD_READDIR, inheriting: READ });
  t.is(dir.errno, 0);
  t.is(h.open('in.txt', { dirfd: dir.fd }).errno, Errno.NOENT);
  const withoutRight = h.open('sub', { oflags: Oflags.DIRECTORY, rights: Rights.FD_READDIR });
  t.is(h.open('../in.txt', { dirfd: withoutRight.fd }).errno, Errno.NOTCAPABLE, 'PATH_OPEN is required on the directory fd');
  t.is(h.open('../in.txt', { dirfd: dir.fd }).errno, 0, '.. from a subdirectory back into the preopen is fine');
  t.is(h.open('../../x', { dirfd: dir.fd }).errno, Errno.NOTCAPABLE);
});

test('creation through outside symlinks is refused and writes nothing outside', (t) => {
  const { h, tree } = harness(t);
  t.is(h.open('dangling', { oflags: Oflags.CREAT, rights: WRITE }).errno, Errno.NOTCAPABLE);
  t.is(h.open('ldir/new.txt', { oflags: Oflags.CREAT, rights: WRITE }).errno, Errno.NOTCAPABLE);
  t.is(h.open('link', { oflags: Oflags.TRUNC, rights: WRITE }).errno, Errno.NOTCAPABLE);
  t.false(existsSync(join(tree.outside, 'new.txt')));
  t.is(readFileSync(join(tree.outside, 'secret.txt'), 'utf8'), 'secret\n');
  t.is(h.pathCall('path_create_directory', 'ldir/newdir'), Errno.NOTCAPABLE);
  t.is(h.pathCall('path_create_directory', '../newdir'), Errno.NOTCAPABLE);
  t.false(existsSync(join(tree.outside, 'newdir')));
  t.false(existsSync(join(tree.top, 'newdir')));
});

test('unlink, rmdir and rename never reach outside', (t) => {
  const { h, tree } = harness(t);
  t.is(h.pathCall('path_unlink_file', '../x'), Errno.NOTCAPABLE);
  t.is(h.pathCall('path_unlink_file', 'ldir/secret.txt'), Errno.NOTCAPABLE);
  t.is(h.pathCall('path_remove_directory', 'ldir'), Errno.NOTDIR, 'a symlink is not followed by rmdir');
  t.is(h.rename('in.txt', '../moved.txt'), Errno.NOTCAPABLE);
  t.is(h.rename('in.txt', 'ldir/moved.txt'), Errno.NOTCAPABLE);
  t.is(h.rename('../x', 'stolen.txt'), Errno.NOTCAPABLE);
  t.true(existsSync(join(tree.top, 'x')));
  t.true(existsSync(join(tree.outside, 'secret.txt')));
  // Removing the link itself is allowed and leaves its target alone.
  t.is(h.pathCall('path_unlink_file', 'link'), 0);
  t.false(existsSync(join(tree.box, 'link')));
  t.true(existsSync(join(tree.outside, 'secret.txt')));
  // And inside operations work.
  t.is(h.rename('in.txt', 'sub/moved.txt'), 0);
  t.is(readFileSync(join(tree.box, 'sub', 'moved.txt'), 'utf8'), 'inside\n');
  t.is(h.pathCall('path_create_directory', 'made'), 0);
  t.is(h.pathCall('path_create_directory', 'made'), Errno.EXIST);
  t.is(h.pathCall('path_remove_directory', 'made'), 0);
  t.is(h.pathCall('path_remove_directory', 'sub'), Errno.NOTEMPTY);
  t.is(h.pathCall('path_unlink_file', 'sub'), Errno.ISDIR);
  t.is(h.pathCall('path_remove_directory', '.'), Errno.BUSY);
});

test('path_filestat_get sees an outside symlink as a symlink but will not follow it', (t) => {
  const { h } = harness(t);
  t.is(h.filetype('link', false), Filetype.SYMBOLIC_LINK);
  t.deepEqual(h.filetype('link', true), { errno: Errno.NOTCAPABLE });
  t.is(h.filetype('okl', true), Filetype.REGULAR_FILE);
  t.is(h.filetype('sub', true), Filetype.DIRECTORY);
  t.deepEqual(h.filetype('../x', false), { errno: Errno.NOTCAPABLE });
  t.deepEqual(h.filetype('missing', false), { errno: Errno.NOENT });
});

test('oflags and fdflags: CREAT, EXCL, TRUNC, DIRECTORY, APPEND, and O_NOFOLLOW on a symlink', (t) => {
  const { h, tree } = harness(t);
  t.is(h.open('in.txt', { oflags: Oflags.CREAT | Oflags.EXCL, rights: WRITE }).errno, Errno.EXIST);
  t.is(h.open('in.txt', { oflags: Oflags.DIRECTORY }).errno, Errno.NOTDIR);
  t.is(h.open('nope.txt').errno, Errno.NOENT);
  t.is(h.open('okl', { follow: false }).errno, Errno.LOOP);
  t.is(h.open('sub', { rights: WRITE }).errno, Errno.ISDIR);

  const created = h.open('new.txt', { oflags: Oflags.CREAT | Oflags.EXCL, rights: WRITE | READ });
  t.is(created.errno, 0);
  t.is(h.write(created.fd, 'abc'), 0);
  t.is(readFileSync(join(tree.box, 'new.txt'), 'utf8'), 'abc');

  const appender = h.open('new.txt', { rights: WRITE, fdflags: Fdflags.APPEND });
  t.is(appender.errno, 0);
  t.is(h.write(appender.fd, 'def'), 0);
  t.is(h.write(created.fd, 'X'), 0, 'a plain writer continues at its own offset');
  t.is(h.write(appender.fd, 'ghi'), 0);
  t.is(readFileSync(join(tree.box, 'new.txt'), 'utf8'), 'abcXefghi');

  const truncated = h.open('in.txt', { oflags: Oflags.TRUNC, rights: WRITE });
  t.is(truncated.errno, 0);
  t.is(readFileSync(join(tree.box, 'in.txt'), 'utf8'), '');
});

test('a read-only preopen refuses every write with EROFS and still reads', (t) => {
  const { h, tree } = harness(t, true);
  t.is(h.open('new.txt', { oflags: Oflags.CREAT, rights: WRITE }).errno, Errno.ROFS);
  t.is(h.open('in.txt', { rights: WRITE }).errno, Errno.ROFS);
  t.is(h.open('in.txt', { oflags: Oflags.TRUNC }).errno, Errno.ROFS);
  t.is(h.open('in.txt', { fdflags: Fdflags.APPEND }).errno, Errno.ROFS);
  t.is(h.pathCall('path_create_directory', 'd'), Errno.ROFS);
  t.is(h.pathCall('path_unlink_file', 'in.txt'), Errno.ROFS);
  t.is(h.pathCall('path_remove_directory', 'sub'), Errno.ROFS);
  t.is(h.rename('in.txt', 'moved.txt'), Errno.ROFS);
  t.false(existsSync(join(tree.box, 'new.txt')));
  t.is(readFileSync(join(tree.box, 'in.txt'), 'utf8'), 'inside\n');
  const { errno, fd } = h.open('in.txt');
  t.is(errno, 0);
  t.is(h.read(fd), 'inside\n');
  t.is(h.write(fd, 'x'), Errno.NOTCAPABLE, 'a read-only fd has no FD_WRITE right');
});

test('fd_readdir lists . and .. and the entries, resumable by cookie', (t) => {
  const { h } = harness(t);
  const names = (): string[] => {
    const out: string[] = [];
    let cookie = 0n;
    for (;;) {
      // A small buffer forces several calls and truncated entries.
      const buf = h.alloc(40);
      const used = h.alloc(4);
      t.is(h.call('fd_readdir', PREOPEN_FD, buf, 40, cookie, used), 0);
      const n = h.dv.getUint32(used, true);
      let at = 0;
      let progressed = false;
      while (at + 24 <= n) {
        const namlen = h.dv.getUint32(buf + at + 16, true);
        if (at + 24 + namlen > n) break;
        out.push(new TextDecoder().decode(h.u8.slice(buf + at + 24, buf + at + 24 + namlen)));
        cookie = h.dv.getBigUint64(buf + at, true);
        at += 24 + namlen;
        progressed = true;
      }
      if (n < 40) return out;
      t.true(progressed, 'each call must return at least one whole entry');
    }
  };
  t.deepEqual(names(), ['.', '..', 'dangling', 'in.txt', 'ldir', 'link', 'okl', 'sneaky', 'sub']);
});

test('preopens are announced through fd_prestat_get / fd_prestat_dir_name', (t) => {
  const { h } = harness(t);
  const buf = h.alloc(8);
  t.is(h.call('fd_prestat_get', PREOPEN_FD, buf), 0);
  t.is(h.dv.getUint8(buf), 0);
  t.is(h.dv.getUint32(buf + 4, true), 4);
  const name = h.alloc(4);
  t.is(h.call('fd_prestat_dir_name', PREOPEN_FD, name, 4), 0);
  t.is(new TextDecoder().decode(h.u8.slice(name, name + 4)), '/box');
  t.is(h.call('fd_prestat_get', 4, buf), Errno.BADF);
  t.is(h.call('fd_prestat_get', 1, buf), Errno.BADF);
});

test('args and environ are laid out as C expects', (t) => {
  const h = new Harness({ args: ['prog.wasm', 'a', 'héllo'], env: { A: '1', GREETING: 'hi there' } });
  const count = h.alloc(4);
  const size = h.alloc(4);
  t.is(h.call('args_sizes_get', count, size), 0);
  t.is(h.dv.getUint32(count, true), 3);
  t.is(h.dv.getUint32(size, true), 'prog.wasm\0a\0héllo\0'.length + 1);
  const argv = h.alloc(12);
  const argvBuf = h.alloc(64);
  t.is(h.call('args_get', argv, argvBuf), 0);
  const cstr = (ptr: number): string => {
    let end = ptr;
    while (h.u8[end] !== 0) end++;
    return new TextDecoder().decode(h.u8.slice(ptr, end));
  };
  t.deepEqual([0, 1, 2].map((i) => cstr(h.dv.getUint32(argv + i * 4, true))), ['prog.wasm', 'a', 'héllo']);
  t.is(h.call('environ_sizes_get', count, size), 0);
  t.is(h.dv.getUint32(count, true), 2);
  const env = h.alloc(8);
  const envBuf = h.alloc(64);
  t.is(h.call('environ_get', env, envBuf), 0);
  t.deepEqual([0, 1].map((i) => cstr(h.dv.getUint32(env + i * 4, true))), ['A=1', 'GREETING=hi there']);
});

test('clocks, random_get, poll_oneoff sleep and sched_yield', (t) => {
  const h = new Harness();
  const out = h.alloc(8);
  t.is(h.call('clock_time_get', 1, 1n, out), 0);
  const a = h.dv.getBigUint64(out, true);
  t.is(h.call('clock_time_get', 1, 1n, out), 0);
  t.true(h.dv.getBigUint64(out, true) >= a);
  t.is(h.call('clock_time_get', 0, 1n, out), 0);
  const wall = Number(h.dv.getBigUint64(out, true) / 1_000_000n);
  t.true(Math.abs(wall - Date.now()) < 1000);
  for (const id of [2, 3]) t.is(h.call('clock_time_get', id, 1n, out), 0);
  t.is(h.call('clock_time_get', 9, 1n, out), Errno.INVAL);
  t.is(h.call('clock_res_get', 1, out), 0);

  const buf = h.alloc(100_000);
  t.is(h.call('random_get', buf, 100_000), 0);
  t.true(h.u8.slice(buf, buf + 100_000).some((b) => b !== 0));

  // One relative 50 ms clock subscription.
  const sub = h.alloc(48);
  h.dv.setBigUint64(sub, 77n, true);
  h.dv.setUint8(sub + 8, 0);
  h.dv.setUint32(sub + 16, 1, true);
  h.dv.setBigUint64(sub + 24, 50_000_000n, true);
  const ev = h.alloc(32);
  const nevents = h.alloc(4);
  const started = performance.now();
  t.is(h.call('poll_oneoff', sub, ev, 1, nevents), 0);
  t.true(performance.now() - started >= 45);
  t.is(h.dv.getUint32(nevents, true), 1);
  t.is(h.dv.getBigUint64(ev, true), 77n);
  t.is(h.dv.getUint16(ev + 8, true), 0);
  t.is(h.call('poll_oneoff', sub, ev, 0, nevents), Errno.INVAL);
  t.is(h.call('sched_yield'), 0);
});

test('stdio: ESPIPE on seek/tell, EBADF on the wrong direction, output in order', (t) => {
  const h = new Harness({ stdin: new TextEncoder().encode('in') });
  const out = h.alloc(8);
  t.is(h.call('fd_seek', 1, 0n, 0, out), Errno.SPIPE);
  t.is(h.call('fd_tell', 0, out), Errno.SPIPE);
  t.is(h.write(0, 'x'), Errno.BADF);
  t.is(h.read(0), 'in');
  t.is(h.read(0), '');
  t.is(h.write(1, 'one'), 0);
  t.is(h.write(2, 'two'), 0);
  t.is(h.write(1, 'three'), 0);
  t.deepEqual(h.output, [
    { fd: 1, text: 'one' },
    { fd: 2, text: 'two' },
    { fd: 1, text: 'three' },
  ]);
  const stat = h.alloc(24);
  t.is(h.call('fd_fdstat_get', 1, stat), 0);
  t.is(h.dv.getBigUint64(stat + 8, true) & Rights.FD_WRITE, Rights.FD_WRITE);
  t.is(h.dv.getBigUint64(stat + 8, true) & (Rights.FD_SEEK | Rights.FD_TELL), 0n);
  t.is(h.call('fd_fdstat_get', 42, stat), Errno.BADF);
});

test('out-of-range pointers give EFAULT instead of reading clamped memory', (t) => {
  const h = new Harness();
  const end = h.memory.buffer.byteLength;
  t.is(h.call('args_sizes_get', end - 2, 0), Errno.FAULT);
  t.is(h.call('random_get', end - 10, 11), Errno.FAULT);
  const iov = h.alloc(8);
  h.dv.setUint32(iov, end - 4, true);
  h.dv.setUint32(iov + 4, 8, true);
  t.is(h.call('fd_write', 1, iov, 1, h.alloc(4)), Errno.FAULT);
  t.is(h.call('fd_write', 1, 0xfffffff0, 1, 0), Errno.FAULT, 'pointers are unsigned');
  t.deepEqual(h.output, []);
});

test('proc_exit throws the exit sentinel and every later call re-raises it', (t) => {
  const h = new Harness();
  const first = thrown(() => h.call('proc_exit', 7));
  t.true(first instanceof WasiExit);
  t.is((first as WasiExit).code, 7);
  t.true(h.host.ended instanceof WasiExit);
  t.is(thrown(() => h.call('sched_yield')), first);
});

test('the output limit delivers exactly what fits, then ends the instance', (t) => {
  const h = new Harness({ outputLimit: 5 });
  t.is(h.write(1, 'abc'), 0);
  t.true(thrown(() => h.write(2, 'defg')) instanceof WasiOutputLimit);
  t.deepEqual(h.output, [
    { fd: 1, text: 'abc' },
    { fd: 2, text: 'de' },
  ]);
});

test('every preview1 function is provided; unimplemented ones return ENOSYS', (t) => {
  const h = new Harness();
  t.is(PREVIEW1_FUNCTIONS.length, 46);
  for (const name of PREVIEW1_FUNCTIONS) t.is(typeof h.host.wasiImport[name], 'function', name);
  for (const name of ['sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown', 'path_link', 'path_symlink', 'proc_raise'] as const) {
    t.is(h.call(name, 0, 0, 0, 0, 0, 0), Errno.NOSYS, name);
  }
});
