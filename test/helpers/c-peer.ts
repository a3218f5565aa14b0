import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './paths.js';

/** Builds and drives the C reference (runner-proto/c/) and its hosted peer program. */

export const C_DIR = path.join(ROOT, 'runner-proto', 'c');
export const C_BUILD = path.join(C_DIR, 'build');
export const PEER = path.join(C_BUILD, 'peer');
export const LIB_SOURCES = ['wr_base.c', 'crc32c.c', 'sha256.c', 'frame.c', 'ring.c', 'region.c'];
/** The compile contract of the freestanding library, word for word. */
export const FREESTANDING_FLAGS = ['-std=c11', '-ffreestanding', '-nostdlib', '-fno-builtin', '-Wall', '-Wextra', '-Werror', '-c'];

export const execFileP = promisify(execFile);

export async function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await execFileP(cmd, args, { cwd: options.cwd ?? C_DIR, maxBuffer: 16 * 1024 * 1024 });
  return { stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await execFileP(cmd, ['--version']);
    return true;
  } catch {
    return false;
  }
}

/**
 * `make -C runner-proto/c lib peer`, serialised across test processes (ava runs test files in parallel, and two
 * makes writing the same objects at once can hand `ar` a half-written file).
 */
export async function buildC(): Promise<void> {
  const lock = path.join(os.tmpdir(), `wasmring-c-make-${createHash('sha256').update(C_DIR).digest('hex').slice(0, 12)}.lock`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.closeSync(fs.openSync(lock, 'wx'));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 120_000) fs.rmSync(lock, { force: true }); // left by a killed run
      } catch {
        // gone meanwhile: retry at once
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    await run('make', ['-C', C_DIR, 'lib', 'peer']);
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Runs the peer in a one-shot mode (vectors) and returns its stdout. */
export async function peerOnce(args: string[]): Promise<string> {
  const r = await execFileP(PEER, args, { maxBuffer: 4 * 1024 * 1024 });
  return r.stdout.toString();
}

export interface PeerProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  stderr(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<PeerProcess>();
const files = new Set<string>();

/** A fresh /dev/shm path, removed by cleanup(). */
export function shmPath(tag: string): string {
  const p = path.join('/dev/shm', `wasmring-c-interop-${process.pid}-${tag}-${randomBytes(4).toString('hex')}`);
  files.add(p);
  return p;
}

/** Starts `peer ARGS` and resolves once it printed READY (rejects with its stderr if it exits or stalls first). */
export function startPeer(args: string[], timeoutMs = 10_000): Promise<PeerProcess> {
  const proc = spawn(PEER, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 1 << 20) err = err.slice(-(1 << 19));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const handle: PeerProcess = {
    proc,
    stderr: () => err,
    exited,
    async stop(stopTimeoutMs = 5000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
        const r = await exited;
        clearTimeout(timer);
        live.delete(handle);
        return r;
      }
      live.delete(handle);
      return exited;
    },
  };
  live.add(handle);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`peer did not print READY within ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('READY\n')) {
        clearTimeout(timer);
        resolve(handle);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`peer exited (code ${code}, signal ${signal}) before READY; stderr: ${err}`));
    });
  });
}

/** Kills every peer still running and removes every region file handed out by shmPath(). */
export async function cleanup(): Promise<void> {
  for (const p of [...live]) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await p.exited;
    live.delete(p);
  }
  for (const f of files) fs.rmSync(f, { force: true });
  files.clear();
}
