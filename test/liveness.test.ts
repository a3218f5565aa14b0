import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalSystem, RUNNER_MAIN } from '../agent/src/launch/index.js';
import { RunnerLink } from '../agent/src/link/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { mapFile } from '../runner-proto/src/shm/index.js';
import { bigModule } from './helpers/modules.js';
import { example } from './helpers/paths.js';

const MiB = 1024 * 1024;
const big = bigModule(fs.readFileSync(example('hello')), 16 * MiB);
const bigDigest = `sha256:${createHash('sha256').update(big).digest('hex')}`;

function startRunner(region: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [RUNNER_MAIN, '--region', region], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('runner not ready in 10 s')), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('READY')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`runner exited ${code}`)));
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('runner killed with SIGKILL during a 16 MiB transfer: the agent notices within 1 s, reconnects to the restarted runner and the transfer completes', async (t) => {
  const region = path.join('/dev/shm', `wasm-bridge-live-${process.pid}`);
  let runner = await startRunner(region);
  const link = new RunnerLink({ kind: 'ring', path: region }, createLogger('test', { level: 'silent' }));
  link.start();
  try {
    await link.connected(10_000);
    let killAt = 0;
    const restart = (async () => {
      // Kill as the bytes start to flow, then bring a new runner up on the same region.
      await new Promise<void>((resolve) => {
        const wait = setInterval(() => {
          if (killAt !== 0) {
            clearInterval(wait);
            resolve();
          }
        }, 1);
      });
      await killed(runner);
      await new Promise((r) => setTimeout(r, 300));
      runner = await startRunner(region);
    })();
    const result = await link.ensureModule(bigDigest, async () => {
      if (killAt === 0) killAt = performance.now();
      return big;
    });
    await restart;
    t.true(result.sent);
    t.true(result.attempts >= 2, `retried (${result.attempts} attempts)`);
    t.true(link.lostAt > 0, 'the link noticed the loss');
    const noticedMs = link.lostAt - killAt;
    t.true(noticedMs < 1000, `noticed after ${noticedMs.toFixed(0)} ms`);
    t.log(`runner loss noticed after ${noticedMs.toFixed(0)} ms; transfer done after ${result.attempts} attempts`);
    // The module really is on the new runner: run it.
    let out = '';
    const h = await link.run({ digest: bigDigest, argv0: 'big.wasm', args: ['after'], env: {} }, { onStdout: (c) => (out += Buffer.from(c).toString()), onStderr: () => undefined });
    const exit = await h.exit;
    t.is(exit.exitCode, 0);
    t.is(out, 'hello from wasm\nafter\n');
  } finally {
    await link.close();
    await killed(runner);
    fs.rmSync(region, { force: true });
  }
});

test('agent killed with SIGKILL during a 16 MiB transfer: the runner notices within 1 s; a restarted agent retries to completion', async (t) => {
  const sys = new LocalSystem({ transport: 'ring' });
  await sys.start();
  try {
    const file = path.join(os.tmpdir(), `big-${process.pid}.wasm`);
    fs.writeFileSync(file, big);
    t.is((await sys.cli(['upload', file, '--name', 'big'])).code, 0);
    fs.rmSync(file);
    // Watch the agent->runner ring's tail: kill the agent once 2 MiB of the module have crossed.
    const map = mapFile(sys.region, fs.statSync(sys.region).size);
    const words = new Int32Array(map.buffer);
    const tail0 = Atomics.load(words, 0x100 >> 2) >>> 0;
    const run = sys.cli(['run', 'big'], { timeoutMs: 30_000 });
    const deadline = Date.now() + 20_000;
    while (((Atomics.load(words, 0x100 >> 2) >>> 0) - tail0) >>> 0 < 2 * MiB) {
      if (Date.now() > deadline) throw new Error('transfer never started');
      await new Promise((r) => setImmediate(r));
    }
    map.unmap();
    const killAt = Date.now();
    await sys.killAgent('SIGKILL');
    const cut = await run;
    t.not(cut.code, 0, 'the interrupted run fails');
    // The runner logs the loss (pino JSON, level warn) when the agent's heartbeat stops.
    const seen = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const line = sys.logs.split('\n').find((l) => l.includes('agent heartbeat lost'));
        if (line) {
          clearInterval(timer);
          resolve((JSON.parse(line.slice(line.indexOf('{'))) as { time: number }).time - killAt);
        } else if (Date.now() - killAt > 5000) {
          clearInterval(timer);
          reject(new Error(`runner never noticed: ${sys.logs.slice(-2000)}`));
        }
      }, 20);
    });
    t.true(seen < 1000, `runner noticed after ${seen} ms`);
    t.log(`agent loss noticed by the runner after ${seen} ms`);
    await sys.startAgent();
    const again = await sys.cli(['run', 'big', '--', 'second'], { timeoutMs: 30_000 });
    t.is(again.stdout, 'hello from wasm\nsecond\n');
    t.is(again.code, 0, again.stderr);
  } finally {
    await sys.stop();
  }
});
