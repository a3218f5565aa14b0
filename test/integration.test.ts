import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LocalSystem } from '../agent/src/launch/index.js';
import { example } from './helpers/paths.js';

// Real runner and agent processes over a real /dev/shm region (and, where said, a Unix socket).

const sys = new LocalSystem({ transport: 'ring', agentArgs: ['--max-module', String(1024 * 1024)] });

test.before(async () => {
  await sys.start();
});

test.after.always(async () => {
  await sys.stop();
});

test.serial('hello: upload then run with args and env; exact output and exit 0', async (t) => {
  const up = await sys.cli(['upload', example('hello')]);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stdout, /^stored hello sha256:[0-9a-f]{64} \(\d+ bytes, command\)\n$/);
  const r = await sys.cli(['run', 'hello', '--env', 'GREETING=hi there', '--', 'one', 'two words']);
  t.is(r.stdout, 'hello from wasm\none\ntwo words\nGREETING=hi there\n');
  t.is(r.code, 0, r.stderr);
});

test.serial('hello --exit 3: the module exit code is the CLI exit code', async (t) => {
  const r = await sys.cli(['run', 'hello', '--', '--exit', '3']);
  t.is(r.stdout, 'hello from wasm\n');
  t.is(r.code, 3);
});

test.serial('re-upload of the same bytes is idempotent', async (t) => {
  const r = await sys.cli(['upload', example('hello'), '--json']);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { created: boolean; name: string };
  t.false(j.created);
  t.is(j.name, 'hello');
});

test.serial('nbody 1000 prints the reference energies', async (t) => {
  t.is((await sys.cli(['upload', example('nbody')])).code, 0);
  const r = await sys.cli(['run', 'nbody', '--', '1000']);
  t.is(r.stdout, '-0.169075164\n-0.169087605\n');
  t.is(r.code, 0);
});

test.serial('trap is reported as a trap with exit 134 and its output kept', async (t) => {
  t.is((await sys.cli(['upload', example('trap')])).code, 0);
  const r = await sys.cli(['run', 'trap']);
  t.is(r.stdout, 'about to trap\n');
  t.is(r.code, 134);
  t.regex(r.stderr, /trap/);
});

test.serial('original form: wasmedge_emit FILE ARGS uploads and runs', async (t) => {
  const r = await sys.cli([example('hello'), 'x', '--exit', '5']);
  t.is(r.stdout, 'hello from wasm\nx\n');
  t.is(r.code, 5);
});

test.serial('ls, rm and status', async (t) => {
  const ls = await sys.cli(['ls', '--json']);
  const names = (JSON.parse(ls.stdout) as Array<{ name: string }>).map((m) => m.name);
  t.deepEqual(names, ['hello', 'nbody', 'trap']);
  const rm = await sys.cli(['rm', 'trap']);
  t.is(rm.code, 0, rm.stderr);
  const again = await sys.cli(['run', 'trap']);
  t.is(again.code, 4);
  t.regex(again.stderr, /AGT_ERR_NOT_FOUND/);
  const st = await sys.cli(['status', '--json']);
  const s = JSON.parse(st.stdout) as { runner: { connected: boolean; transport: string }; modules: number };
  t.true(s.runner.connected);
  t.is(s.runner.transport, 'ring');
  t.is(s.modules, 2);
});

// ---- bad input: each a clear one-line error, nothing stored, agent still up ----

const hello = fs.readFileSync(example('hello'));
const badInputs: Array<[string, Buffer, RegExp, number]> = [
  ['truncated', hello.subarray(0, Math.floor(hello.length / 2)), /AGT_ERR_WASM_MALFORMED/, 3],
  ['wrong-magic', Buffer.concat([Buffer.from('\0wasn'), hello.subarray(4)]), /magic/, 3],
  ['trailing-garbage', Buffer.concat([hello, Buffer.from('garbage!')]), /trailing|after|end/i, 3],
  [
    'env-import',
    // (module (import "env" "f" (func)) (func (export "_start")))
    Buffer.from('0061736d0100000001040160000002090103656e760166000003020100070a01065f737461727400010a040102000b', 'hex'),
    /env/,
    3,
  ],
  ['oversized', Buffer.concat([hello, Buffer.alloc(1024 * 1024)]), /AGT_ERR_TOO_LARGE/, 3],
];

for (const [label, bytes, pattern, code] of badInputs) {
  test.serial(`bad input refused: ${label}`, async (t) => {
    const file = path.join(sys.dir, `${label}.wasm`);
    fs.writeFileSync(file, bytes);
    const before = fs.readdirSync(path.join(sys.storeDir, 'blobs', 'sha256')).sort();
    const r = await sys.cli(['upload', file]);
    t.is(r.code, code, r.stderr);
    t.regex(r.stderr, pattern);
    t.is(r.stderr.trim().split('\n').length, 1, 'one line');
    t.is(r.stdout, '');
    t.deepEqual(fs.readdirSync(path.join(sys.storeDir, 'blobs', 'sha256')).sort(), before, 'nothing stored');
    t.false((await sys.cli(['ls', '--json'])).stdout.includes(label));
    t.is((await sys.cli(['status'])).code, 0, 'agent still up');
  });
}

for (const name of ['a/b', '..', '../x', 'x/../y']) {
  test.serial(`name refused: ${JSON.stringify(name)}`, async (t) => {
    const r = await sys.cli(['upload', example('hello'), '--name', name]);
    t.is(r.code, 3, r.stderr);
    t.regex(r.stderr, /name/i);
    t.is((await sys.cli(['status'])).code, 0);
  });
}

test.serial('name with / or .. refused by the API itself too', async (t) => {
  for (const raw of ['..', '%2e%2e', 'a%2Fb']) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: sys.agentSocket, method: 'POST', path: `/v1/modules/${raw}` }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(hello);
    });
    t.true(status === 400 || status === 404, `${raw} -> ${status}`);
  }
  const ls = JSON.parse((await sys.cli(['ls', '--json'])).stdout) as Array<{ name: string }>;
  t.deepEqual(ls.map((m) => m.name).sort(), ['hello', 'nbody']);
});
