import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { AgentClient } from '../agent/src/client/index.js';
import { LocalSystem } from '../agent/src/launch/index.js';
import { waitFor } from './helpers/agent-api.js';
import { ROOT, example } from './helpers/paths.js';

// The guest image runs the agent as one esbuild bundle (build/bundle.mjs). The script is run unmodified from a
// scratch tree (symlinks to the sources) so this test never touches build/out/, then the bundled agent and CLI
// serve a real runner: lazily loaded pieces (ws, chokidar) must have made it into the bundle.

const execFileP = promisify(execFile);

test('the bundled agent and CLI work against a real runner, inbox and WebSocket included', async (t) => {
  const script = path.join(ROOT, 'build', 'bundle.mjs');
  if (!fs.existsSync(script)) {
    t.log('build/bundle.mjs is not there (the QEMU build adds it); skipped');
    t.pass();
    return;
  }
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-bundle-'));
  const sys = new LocalSystem({ transport: 'ring' });
  t.teardown(async () => {
    await sys.stop();
    fs.rmSync(tree, { recursive: true, force: true });
  });
  fs.mkdirSync(path.join(tree, 'build'));
  fs.copyFileSync(script, path.join(tree, 'build', 'bundle.mjs'));
  for (const d of ['agent', 'runner-proto', 'node_modules', 'package.json', 'tsconfig.json']) fs.symlinkSync(path.join(ROOT, d), path.join(tree, d));
  await execFileP(process.execPath, [path.join(tree, 'build', 'bundle.mjs')], { timeout: 120_000 });
  const agentBundle = path.join(tree, 'build', 'out', 'bundle', 'agent.mjs');
  const cliBundle = path.join(tree, 'build', 'out', 'bundle', 'cli.mjs');
  t.true(fs.existsSync(agentBundle));
  // The channel's heartbeat thread is started by file name: it must sit beside the bundles, as CommonJS.
  t.true(fs.existsSync(path.join(tree, 'build', 'out', 'bundle', 'heartbeat-thread.js')));

  await sys.startRunner();
  const inbox = path.join(sys.dir, 'inbox');
  const agent = spawn(process.execPath, [agentBundle, '--region', sys.region, '--notify', 'futex', '--socket', sys.agentSocket, '--store', sys.storeDir, '--inbox', inbox], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  sys.agent = agent; // stop() ends it
  let err = '';
  agent.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await waitFor('bundled agent READY', () => new Promise<boolean>((resolve) => agent.stdout!.once('data', (c: Buffer) => resolve(c.toString().includes('READY')))), 20_000);

  fs.copyFileSync(example('calc'), path.join(inbox, '.calc.part'));
  fs.renameSync(path.join(inbox, '.calc.part'), path.join(inbox, 'calc.wasm'));
  const client = new AgentClient(sys.agentSocket);
  await waitFor('calc deployed from the inbox', async () => (await client.app('calc').catch(() => undefined))?.status === 'running', 10_000);
  const cli = await execFileP(process.execPath, [cliBundle, '--socket', sys.agentSocket, 'call', 'calc', 'add', '40', '2'], { timeout: 20_000 });
  t.is(cli.stdout, '42\n');
  const up = await execFileP(process.execPath, [cliBundle, '--socket', sys.agentSocket, 'upload', example('hello')], { timeout: 20_000 });
  t.regex(up.stdout, /^stored hello/);
  let out = '';
  const exit = await client.run('hello', { args: ['bundled'] }, { onStdout: (c) => (out += Buffer.from(c).toString()), onStderr: () => undefined });
  t.is(exit.exitCode, 0);
  t.is(out, 'hello from wasm\nbundled\n');
  client.close();
  t.is(err.includes('Error'), false, err);
  t.false(err.includes('heartbeat thread failed'), err);
});
