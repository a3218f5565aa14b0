import test from 'ava';
import fs from 'node:fs';
import { LocalSystem } from '../agent/src/launch/index.js';
import { api, waitFor } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';
import { digestOf } from './helpers/runner-process.js';

// A new module's bytes leave for the runner before the agent's check has passed, so the runner's hash and
// compile overlap it. Bytes the agent then refuses must not stay behind on the runner.

test('bytes sent ahead of their check are withdrawn from the runner when the deploy is refused', async (t) => {
  const sys = new LocalSystem({ transport: 'ring', logLevel: 'info' });
  t.teardown(() => sys.stop());
  await sys.start();
  const hello = fs.readFileSync(example('hello'));
  const helloV2 = fs.readFileSync(example('hello', 'hello-v2'));
  const deploy = (bytes: Buffer, spec: object) =>
    api(sys, 'PUT', '/v1/apps/ahead', { body: bytes, headers: { 'content-type': 'application/wasm', 'x-app-spec': JSON.stringify(spec) } });
  const pinned = await deploy(hello, { pin: digestOf(hello) });
  t.is(pinned.status, 201, pinned.text);
  const refused = await deploy(helloV2, {});
  t.is(refused.status, 422, refused.text);
  t.is(refused.json().error.details.rule, 'pinned-digest');
  const v2 = digestOf(helloV2);
  // Only the runner logs these two messages.
  const runnerLines = () => sys.logs.split('\n').filter((l) => l.includes(v2));
  // It was sent ahead (the runner received it) and then forgotten.
  await waitFor('the runner to forget the refused module', () => runnerLines().some((l) => l.includes('module forgotten')), 5000);
  t.true(runnerLines().some((l) => l.includes('module received')), 'the refused bytes had been sent ahead');
  // The app still runs the pinned version.
  t.is((await api(sys, 'GET', '/v1/apps/ahead')).json().digest, digestOf(hello));
});
