import test from 'ava';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalSystem } from '../agent/src/launch/index.js';
import { TrustStore, decodeSignature, keyIdOf, parsePublicKey } from '../agent/src/trust/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { api, makeSigner, waitFor } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';

const log = createLogger('test', { level: 'silent' });
const hello = fs.readFileSync(example('hello'));
const helloV2 = fs.readFileSync(example('hello', 'hello-v2'));

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'trust-'));
}

test('public keys: PEM, raw 32 bytes, base64 and hex all name the same key; other keys are refused with a reason', (t) => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const raw = der.subarray(der.length - 32);
  const id = keyIdOf(raw);
  t.regex(id, /^ed25519:[0-9a-f]{16}$/);
  for (const form of [Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string), raw, Buffer.from(raw.toString('base64')), Buffer.from(raw.toString('hex')), Buffer.from(der.toString('base64'))]) {
    const k = parsePublicKey(form, 'k.pem');
    t.false(typeof k === 'string', String(k));
    t.is((k as { id: string }).id, id);
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  t.regex(parsePublicKey(Buffer.from(rsa), 'rsa.pem') as string, /rsa key; expected ed25519/);
  t.regex(parsePublicKey(Buffer.from('hello'), 'x.pub') as string, /neither PEM/);
});

test('signatures: raw, base64 or hex; a signature is checked whenever present, required only by policy', (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const alice = makeSigner(dir, 'alice');
  const sig = alice.sign(hello);
  for (const form of [sig, sig.toString('base64'), sig.toString('hex'), Buffer.from(`${sig.toString('base64')}\n`)]) t.deepEqual(decodeSignature(form), sig);
  t.is(decodeSignature('too short'), undefined);

  const optional = new TrustStore({ keysDir: dir, requireSignature: false }, log);
  t.deepEqual(optional.check(hello, undefined, 'm'), { signed: false });
  const v = optional.check(hello, sig, 'm');
  t.true(v.signed);
  t.is((v as { label: string }).label, 'alice.pem');
  const tampered = t.throws(() => optional.check(helloV2, sig, 'm')) as AgentError;
  t.is(tampered.code, 'AGT_ERR_SIGNATURE');
  t.is(tampered.details.rule, 'signature-invalid');

  const required = new TrustStore({ keysDir: dir, requireSignature: true }, log);
  t.is((t.throws(() => required.check(hello, undefined, 'm')) as AgentError).details.rule, 'signature-required');
  const mallory = generateKeyPairSync('ed25519').privateKey;
  t.is((t.throws(() => required.check(hello, sign(null, hello, mallory), 'm')) as AgentError).details.rule, 'signature-invalid');
  t.is((t.throws(() => required.check(hello, 'not-a-signature', 'm')) as AgentError).details.rule, 'signature-format');

  // Revocation: the key file goes, reload() forgets it.
  fs.rmSync(alice.pemFile);
  required.reload();
  t.is((t.throws(() => required.check(hello, sig, 'm')) as AgentError).details.rule, 'no-trusted-keys');
});

test('a signature made with openssl pkeyutl -rawin verifies', (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', path.join(dir, 'key.pem')]);
  } catch {
    t.pass('openssl not available; skipped');
    return;
  }
  const keys = path.join(dir, 'keys');
  fs.mkdirSync(keys);
  execFileSync('openssl', ['pkey', '-in', path.join(dir, 'key.pem'), '-pubout', '-out', path.join(keys, 'ops.pem')]);
  fs.writeFileSync(path.join(dir, 'm.wasm'), hello);
  execFileSync('openssl', ['pkeyutl', '-sign', '-rawin', '-inkey', path.join(dir, 'key.pem'), '-in', path.join(dir, 'm.wasm'), '-out', path.join(dir, 'm.wasm.sig')]);
  const store = new TrustStore({ keysDir: keys, requireSignature: true }, log);
  t.true(store.check(hello, fs.readFileSync(path.join(dir, 'm.wasm.sig')), 'm').signed);
});

test('an agent requiring signatures refuses unsigned and tampered modules on every path: upload, deploy, stored, inbox, CLI', async (t) => {
  const dir = tmp();
  const keys = path.join(dir, 'keys');
  const inbox = path.join(dir, 'inbox');
  const signer = makeSigner(keys, 'release');
  const sys = new LocalSystem({ transport: 'ring', dir, agentArgs: ['--trust-keys', keys, '--require-signature', '--inbox', inbox] });
  t.teardown(async () => {
    await sys.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await sys.start();
  const sig = signer.sign(hello).toString('base64');

  const unsigned = await api(sys, 'POST', '/v1/modules/hello', { body: hello });
  t.is(unsigned.status, 403);
  t.is(unsigned.json().error.code, 'AGT_ERR_SIGNATURE');
  t.is(unsigned.json().error.details.rule, 'signature-required');
  const tampered = await api(sys, 'POST', '/v1/modules/hello', { body: helloV2, headers: { 'x-module-signature': sig } });
  t.is(tampered.status, 403);
  t.is(tampered.json().error.details.rule, 'signature-invalid');
  t.deepEqual((await api(sys, 'GET', '/v1/modules')).json().modules, [], 'nothing stored');

  const good = await api(sys, 'POST', '/v1/modules/hello', { body: hello, headers: { 'x-module-signature': sig } });
  t.is(good.status, 201, good.text);
  t.regex(good.json().signer, /^ed25519:[0-9a-f]{16}$/);

  const deployUnsigned = await api(sys, 'PUT', '/v1/apps/h2', { body: helloV2, headers: { 'content-type': 'application/wasm' } });
  t.is(deployUnsigned.status, 403);
  const byName = await api(sys, 'PUT', '/v1/apps/h1', { body: { module: 'hello' } });
  t.is(byName.status, 201, byName.text);
  t.is(byName.json().signer, good.json().signer);

  // CLI: FILE.sig beside the module is picked up; without it the exit code says "rejected".
  const file = path.join(dir, 'v2.wasm');
  fs.writeFileSync(file, helloV2);
  const cliUnsigned = await sys.cli(['upload', file]);
  t.is(cliUnsigned.code, 3, cliUnsigned.stderr);
  t.regex(cliUnsigned.stderr, /AGT_ERR_SIGNATURE/);
  fs.writeFileSync(`${file}.sig`, signer.sign(helloV2));
  const cliSigned = await sys.cli(['deploy', 'v2', file]);
  t.is(cliSigned.code, 0, cliSigned.stderr);
  t.regex(cliSigned.stdout, /signed by ed25519:/);

  // Inbox: unsigned goes to rejected/ with the reason; signed (signature written first) is deployed.
  fs.writeFileSync(path.join(inbox, 'plain.wasm'), hello);
  await waitFor('rejected reason', () => fs.existsSync(path.join(inbox, 'rejected', 'plain.reason.json')), 10_000);
  t.is(JSON.parse(fs.readFileSync(path.join(inbox, 'rejected', 'plain.reason.json'), 'utf8')).code, 'AGT_ERR_SIGNATURE');
  fs.writeFileSync(path.join(inbox, 'signed.wasm.sig'), signer.sign(hello));
  fs.writeFileSync(path.join(inbox, '.signed.tmp'), hello);
  fs.renameSync(path.join(inbox, '.signed.tmp'), path.join(inbox, 'signed.wasm'));
  await waitFor('signed app running', async () => (await api(sys, 'GET', '/v1/apps/signed')).json().status === 'running', 10_000);

  // Revocation: remove the key and reload (SIGHUP, as `systemctl reload` sends; or the API); a stored module
  // can no longer be deployed, running apps stay.
  fs.rmSync(signer.pemFile);
  sys.agent!.kill('SIGHUP');
  await waitFor('keys reloaded on SIGHUP', async () => (await api(sys, 'GET', '/v1/status')).json().trust.keys.length === 0, 5000);
  const reload = await api(sys, 'POST', '/v1/trust/reload');
  t.deepEqual(reload.json().keys, []);
  const revoked = await api(sys, 'PUT', '/v1/apps/h3', { body: { module: 'hello' } });
  t.is(revoked.status, 403);
  t.is((await api(sys, 'GET', '/v1/apps/h1')).json().status, 'running');
});
