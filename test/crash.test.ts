import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import { LocalSystem } from '../agent/src/launch/index.js';
import { ModuleStore } from '../agent/src/store/index.js';
import { bigModule } from './helpers/modules.js';
import { example } from './helpers/paths.js';

test('killing the agent mid-upload leaves no partial module visible after restart', async (t) => {
  const sys = new LocalSystem({ transport: 'ring' });
  await sys.start();
  try {
    const big = bigModule(fs.readFileSync(example('hello')), 24 * 1024 * 1024);
    // Send half the body slowly, then kill the agent with SIGKILL while the upload is in flight.
    await new Promise<void>((resolve) => {
      const req = http.request({ socketPath: sys.agentSocket, method: 'POST', path: '/v1/modules/big', headers: { 'content-length': big.length } });
      req.on('error', () => resolve());
      req.write(big.subarray(0, big.length >> 1), () => {
        setTimeout(() => {
          void sys.killAgent('SIGKILL').then(() => resolve());
        }, 100);
      });
    });
    await sys.startAgent();
    const ls = await sys.cli(['ls', '--json']);
    t.deepEqual(JSON.parse(ls.stdout), []);
    const store = await ModuleStore.open(sys.storeDir);
    t.deepEqual(await store.verifyAll(), []);
    t.deepEqual(fs.readdirSync(`${sys.storeDir}/tmp`), []);
    t.deepEqual(fs.readdirSync(`${sys.storeDir}/blobs/sha256`), []);
    // The restarted agent works and the full upload then succeeds.
    const up = await sys.cli(['upload', example('hello')]);
    t.is(up.code, 0, up.stderr);
    const r = await sys.cli(['run', 'hello']);
    t.is(r.stdout, 'hello from wasm\n');
  } finally {
    await sys.stop();
  }
});

test('stream transport: the same run over a Unix socket', async (t) => {
  const sys = new LocalSystem({ transport: 'stream' });
  await sys.start();
  try {
    t.is((await sys.cli(['upload', example('hello')])).code, 0);
    const r = await sys.cli(['run', 'hello', '--', 'via', 'socket']);
    t.is(r.stdout, 'hello from wasm\nvia\nsocket\n');
    t.is(r.code, 0);
    const st = JSON.parse((await sys.cli(['status', '--json'])).stdout) as { runner: { transport: string } };
    t.is(st.runner.transport, 'stream');
  } finally {
    await sys.stop();
  }
});

test('demo-style shutdown leaves no /dev/shm file and exits cleanly', async (t) => {
  const sys = new LocalSystem({ transport: 'ring' });
  await sys.start();
  t.true(fs.existsSync(sys.region));
  const exits = await sys.stop();
  t.is(exits.agentExit, 0);
  t.is(exits.runnerExit, 0);
  t.false(fs.existsSync(sys.region));
});
