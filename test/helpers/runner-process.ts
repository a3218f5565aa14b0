import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { RUNNER_MAIN } from '../../agent/src/launch/index.js';
import { RunnerLink } from '../../agent/src/link/index.js';
import { createLogger } from '../../runner-proto/src/log/index.js';

/** A real runner process on a fresh /dev/shm region, and an agent-side RunnerLink to it. */
export interface RunnerUnderTest {
  readonly region: string;
  readonly link: RunnerLink;
  child: ChildProcess;
  logs: string;
  /** Sends a module (if missing) and returns its digest. */
  put(bytes: Uint8Array): Promise<string>;
  stop(): Promise<void>;
}

let counter = 0;

export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function spawnRunner(region: string, extra: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [RUNNER_MAIN, '--region', region, '--notify', 'futex', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('runner not ready within 10 s')), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('READY')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`runner exited ${code}`)));
  });
}

export async function startRunner(extra: readonly string[] = []): Promise<RunnerUnderTest> {
  const region = `/dev/shm/wasm-bridge-rt-${process.pid}-${counter++}`;
  const child = await spawnRunner(region, extra);
  const link = new RunnerLink({ kind: 'ring', path: region, notify: 'futex' }, createLogger('test', { level: 'silent' }));
  link.start();
  await link.connected(10_000);
  const r: RunnerUnderTest = {
    region,
    link,
    child,
    logs: '',
    async put(bytes) {
      const digest = digestOf(bytes);
      await link.ensureModule(digest, async () => bytes);
      return digest;
    },
    async stop() {
      await link.close();
      await new Promise<void>((resolve) => {
        if (r.child.exitCode !== null || r.child.signalCode !== null) return resolve();
        const t = setTimeout(() => r.child.kill('SIGKILL'), 5000);
        r.child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        r.child.kill('SIGTERM');
      });
      fs.rmSync(region, { force: true });
    },
  };
  child.stderr!.on('data', (c: Buffer) => (r.logs += c.toString()));
  return r;
}
