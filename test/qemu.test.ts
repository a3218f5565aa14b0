import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './helpers/paths.js';

// End to end in the emulator: a real guest Linux (Debian kernel, busybox, node) boots under QEMU's TCG, its agent
// receives `wasmedge_emit upload` and `run`, and the modules run on the runner on this host, over the ivshmem
// shared-memory device (ring) or over a virtio-serial port alone (serial). The guest checks every result itself
// (qemu/init.sh, bridge.script=test) and prints markers; this test asserts the exact transcript from the console.
// It needs qemu-system-x86 (CI installs it) and builds the guest image (build/guest-image.sh) when missing.

const RUN_SH = path.join(ROOT, 'qemu/run.sh');
const GUEST_IMAGE_SH = path.join(ROOT, 'build/guest-image.sh');
const RUNNER_MAIN = path.join(ROOT, 'dist/runner-proto/src/runner/main.js');

function qemuMissing(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return undefined;
  return 'qemu-system-x86_64 is not installed: the QEMU end-to-end test needs it (Debian: apt-get install qemu-system-x86; .ci/run installs it)';
}

interface Proc {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
}

/** Runs a command in its own process group, bounded; on timeout (or teardown) the whole group is killed. */
function runBounded(t: ExecutionContext, cmd: string, args: string[], timeoutMs: number): Promise<Proc> {
  const child: ChildProcess = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const done = new Promise<Proc>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, out }));
  });
  const timer = setTimeout(() => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), 10_000).unref();
  }, timeoutMs);
  t.teardown(async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      killGroup('SIGTERM');
      const grace = setTimeout(() => killGroup('SIGKILL'), 10_000);
      await done;
      clearTimeout(grace);
    }
  });
  return done.finally(() => clearTimeout(timer));
}

let image: Promise<Proc> | undefined;
function buildImage(t: ExecutionContext): Promise<Proc> {
  image ??= runBounded(t, 'bash', [GUEST_IMAGE_SH, '--quiet'], 15 * 60_000);
  return image;
}

/** Processes whose command line names `id` (the region, socket and temp dir all carry it). */
function processesNaming(id: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(id)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

interface Step {
  readonly lines: string[];
  readonly exit: number;
}

/** Parses the guest's BRIDGE-BEGIN/END blocks; kernel printk lines are dropped, \r of the serial console too. */
function parseSteps(console: string): Map<string, Step> {
  const steps = new Map<string, Step>();
  let current: { name: string; lines: string[] } | undefined;
  for (const raw of console.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const begin = /^BRIDGE-BEGIN (\S+)$/.exec(line);
    if (begin) {
      current = { name: begin[1]!, lines: [] };
      continue;
    }
    const end = /^BRIDGE-END (\S+) exit=(\d+)/.exec(line);
    if (end && current && end[1] === current.name) {
      steps.set(current.name, { lines: current.lines, exit: Number(end[2]) });
      current = undefined;
      continue;
    }
    if (current && !/^\[\s*\d+\.\d+\] /.test(line)) current.lines.push(line);
  }
  return steps;
}

async function bootAndCheck(t: ExecutionContext, transport: 'ring' | 'serial'): Promise<void> {
  t.timeout(20 * 60_000, 'guest image build plus a TCG boot and the scripted deploys');
  const missing = qemuMissing();
  if (missing) {
    t.fail(missing);
    return;
  }
  if (!fs.existsSync(RUNNER_MAIN)) {
    t.fail(`${RUNNER_MAIN} is missing: build first (npm run build)`);
    return;
  }
  const built = await buildImage(t);
  if (built.code !== 0) {
    t.fail(`build/guest-image.sh failed (exit ${built.code ?? built.signal}):\n${built.out.slice(-3000)}`);
    return;
  }

  const id = `wasm-bridge-qemu-test-${transport}-${process.pid}-${Date.now()}`;
  t.teardown(() => {
    // Whatever happened, leave no emulator, runner or region behind.
    for (const pid of processesNaming(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fs.rmSync(`/dev/shm/${id}`, { force: true });
    fs.rmSync(`/dev/shm/${id}.bell`, { force: true });
  });
  const t0 = Date.now();
  const r = await runBounded(t, 'bash', [RUN_SH, '--no-build', '--transport', transport, '--script', 'test', '--id', id, '--timeout', '300'], 330_000);
  const wall = (Date.now() - t0) / 1000;
  const out = r.out.replace(/\r/g, '');
  const timings = out.split('\n').filter((l) => /^# \[\s*[\d.]+ s\]/.test(l) || /^\s+(guest init|agent ready|first deployed|hot swap|QEMU exited)/.test(l));
  t.log(`${transport}: ${wall.toFixed(1)} s in all\n${timings.join('\n')}`);

  t.is(r.code, 0, `qemu/run.sh --transport ${transport} failed:\n${out.slice(-6000)}`);
  t.false(/^BRIDGE-CHECK FAIL/m.test(out), out.slice(-6000));
  t.regex(out, /^BRIDGE-RESULT pass$/m);

  const steps = parseSteps(out);
  const expect = (name: string, exit: number, lines: string[]): void => {
    const s = steps.get(name);
    if (!s) {
      t.fail(`step ${name} missing from the guest console:\n${out.slice(-4000)}`);
      return;
    }
    t.is(s.exit, exit, `${name} exit code`);
    t.deepEqual(s.lines, lines, `${name} transcript`);
  };
  const ex = '/opt/bridge/examples';
  const upload = (name: string): RegExp => new RegExp(`^stored ${name} sha256:[0-9a-f]{64} \\(\\d+ bytes, command\\)$`);

  // The first deploy uploads and runs in one CLI process; the next step runs the stored module by name.
  expect('hello-args', 0, [`$ wasmedge_emit run ${ex}/hello/hello.wasm --env GREETING=seL4 -- alpha beta`, 'hello from wasm', 'alpha', 'beta', 'GREETING=seL4', '[exit 0]']);
  expect('hello-exit', 3, ['$ wasmedge_emit run hello -- --exit 3', 'hello from wasm', '[exit 3]']);
  t.regex(steps.get('upload-nbody')?.lines[1] ?? '', upload('nbody'));
  expect('nbody', 0, ['$ wasmedge_emit run nbody -- 1000', '-0.169075164', '-0.169087605', '[exit 0]']);
  // A trap is reported as a trap: stdout so far, a trap line on stderr, exit 134.
  const trap = steps.get('trap');
  t.is(trap?.exit, 134);
  t.deepEqual(trap?.lines.slice(0, 2), [`$ wasmedge_emit ${ex}/trap/trap.wasm`, 'about to trap']);
  t.regex(trap?.lines.slice(2, -1).join('\n') ?? '', /trap/);
  t.is(trap?.lines.at(-1), '[exit 134]');
  // Hot swap: a new version under the same name; the next run is the new code.
  const v2 = steps.get('upload-hello-v2');
  t.is(v2?.exit, 0);
  t.regex(v2?.lines[1] ?? '', upload('hello'));
  // "stored" (not "unchanged"): the agent took it as new content under the existing name hello.
  expect('hello-v2', 0, ['$ wasmedge_emit run hello', 'hello from wasm v2', '[exit 0]']);
  t.regex(steps.get('status')?.lines.join('\n') ?? '', new RegExp(`connected via ${transport} `));

  // Cleanup: no emulator or runner left, no region, no socket directory.
  t.deepEqual(processesNaming(id), [], 'no process left that names the run');
  t.false(fs.existsSync(`/dev/shm/${id}`), 'the /dev/shm region is removed');
  t.false(fs.existsSync(`/dev/shm/${id}.bell`), 'the doorbell socket is removed');
  t.deepEqual(
    fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(id)),
    [],
    'the temp dir with the virtio-serial socket is removed',
  );
}

test.serial('QEMU guest deploys over ivshmem (ring): hello with args, nbody 1000, trap -> 134, hot swap to v2', async (t) => {
  await bootAndCheck(t, 'ring');
});

test.serial('QEMU guest deploys over virtio-serial alone (serial): same transcript', async (t) => {
  await bootAndCheck(t, 'serial');
});
