import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { AgentClient } from '../agent/src/client/index.js';
import { LocalSystem } from '../agent/src/launch/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { api, request, waitFor } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';

// The API surface itself: listeners and their access rules, body limits, validation, logs, WebSockets.

const TOKEN = 'test-token-0123456789abcdef';
const MAX_JSON = 4096;
const MAX_MODULE = 256 * 1024;
const MAX_INVOKE = 8192;
const hello = fs.readFileSync(example('hello'));
const calc = fs.readFileSync(example('calc'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-test-'));
const tokenFile = path.join(dir, 'token');
fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
const config = path.join(dir, 'agent.json');
fs.writeFileSync(config, JSON.stringify({ api: { maxJsonBytes: MAX_JSON, maxInvokeBytes: MAX_INVOKE, tcp: { host: '127.0.0.1', port: 0, tokenFile } } }));
const sys = new LocalSystem({ transport: 'ring', dir, agentArgs: ['--config', config, '--max-module', String(MAX_MODULE)] });

const tcp = () => ({ host: '127.0.0.1', port: sys.tcpPort! });

test.before(async () => {
  await sys.start();
  await api(sys, 'PUT', '/v1/apps/hello', { body: hello, headers: { 'content-type': 'application/wasm' } });
  await api(sys, 'PUT', '/v1/apps/calc', { body: calc, headers: { 'content-type': 'application/wasm', 'x-app-spec': '{"pool":{"min":1,"max":2}}' } });
});
test.after.always(async () => {
  await sys.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the Unix socket is mode 0660 and needs no token', async (t) => {
  t.is(fs.statSync(sys.agentSocket).mode & 0o777, 0o660);
  t.is((await api(sys, 'GET', '/v1/health')).json().ok, true);
});

test('TCP without a token, or with a wrong one, is refused (401); with the token it serves', async (t) => {
  t.truthy(sys.tcpPort);
  const none = await request(tcp(), 'GET', '/v1/status');
  t.is(none.status, 401);
  t.is(none.json().error.code, 'AGT_ERR_UNAUTHORIZED');
  t.regex(String(none.headers['www-authenticate']), /^Bearer/);
  for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, 'Bearer', TOKEN]) {
    const r = await request(tcp(), 'GET', '/v1/status', { headers: { authorization: auth } });
    t.is(r.status, 401, auth);
  }
  // Refused before anything else happens: even a body over the limits gets 401, and a deploy does nothing.
  const deploy = await request(tcp(), 'PUT', '/v1/apps/sneaky', { body: hello, headers: { 'content-type': 'application/wasm', authorization: 'Bearer nope-nope-nope-nope' } });
  t.is(deploy.status, 401);
  t.is((await api(sys, 'GET', '/v1/apps/sneaky')).status, 404);
  const ok = await request(tcp(), 'GET', '/v1/status', { headers: { authorization: `Bearer ${TOKEN}` } });
  t.is(ok.status, 200);
  t.true(ok.json().runner.connected);
});

test('TCP WebSockets need the token too; the client library speaks both', async (t) => {
  const refused = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${sys.tcpPort}/v1/calls`);
    ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => reject(new Error('opened without a token')));
    ws.on('error', () => undefined);
  });
  t.is(refused, 401);
  const client = new AgentClient({ host: '127.0.0.1', port: sys.tcpPort!, token: TOKEN });
  t.deepEqual((await client.call('calc', 'add', [1, 1])).results, [{ type: 'i32', value: 2 }]);
  let out = '';
  const exit = await client.run('hello', { args: ['tcp'] }, { onStdout: (c) => (out += Buffer.from(c).toString()), onStderr: () => undefined });
  t.is(exit.exitCode, 0);
  t.is(out, 'hello from wasm\ntcp\n');
  const bad = new AgentClient({ host: '127.0.0.1', port: sys.tcpPort!, token: 'wrong-token-wrong-token' });
  const e = await t.throwsAsync(bad.status());
  t.is((e as AgentError).code, 'AGT_ERR_UNAUTHORIZED');
  const ews = await t.throwsAsync(bad.run('hello', {}, { onStdout: () => undefined, onStderr: () => undefined }));
  t.is((ews as AgentError).code, 'AGT_ERR_UNAUTHORIZED');
  client.close();
  bad.close();
});

test('bodies over their limits are refused with 413: JSON, modules (declared or streamed), invoke input, headers', async (t) => {
  const json = await api(sys, 'POST', '/v1/apps/calc/call', { body: JSON.stringify({ fn: 'add', args: [1, 2], pad: 'x'.repeat(MAX_JSON) }), headers: { 'content-type': 'application/json' } });
  t.is(json.status, 413);
  t.is(json.json().error.code, 'AGT_ERR_TOO_LARGE');
  const big = Buffer.concat([hello, Buffer.alloc(MAX_MODULE)]);
  const declared = await api(sys, 'POST', '/v1/modules/big', { body: big });
  t.is(declared.status, 413);
  t.regex(declared.json().error.message, /exceeds the limit of 262144 bytes/);
  // With Expect: 100-continue (what the CLI sends for large bodies) the refusal comes before any body byte.
  const early = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request({ socketPath: sys.agentSocket, agent: false, method: 'POST', path: '/v1/modules/big', headers: { 'content-length': big.length, expect: '100-continue' } }, (res) => {
      res.resume();
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, continued });
      });
    });
    req.on('continue', () => {
      continued = true;
      req.end(big);
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  t.deepEqual(early, { status: 413, continued: false });
  const deploy = await api(sys, 'PUT', '/v1/apps/big', { body: big, headers: { 'content-type': 'application/wasm' } });
  t.is(deploy.status, 413);
  const invoke = await api(sys, 'POST', '/v1/apps/hello/invoke', { body: Buffer.alloc(MAX_INVOKE + 1) });
  t.is(invoke.status, 413);

  // Chunked (no Content-Length): nothing past the limit is kept; the rest is drained (bounded) so the client,
  // still sending, reads the 413 instead of a reset connection.
  const events: string[] = [];
  const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ socketPath: sys.agentSocket, agent: false, method: 'POST', path: '/v1/modules/streamed', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      events.push(`response ${res.statusCode}`);
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('aborted', () => events.push('aborted'));
    });
    req.on('error', (e) => events.push(`req error ${e.message}`));
    req.on('socket', (sock) => sock.on('close', () => events.push('socket closed')));
    let sent = 0;
    const pump = (): void => {
      if (req.destroyed) return;
      if (sent > 4 * MAX_MODULE) {
        req.end();
        return;
      }
      req.write(Buffer.alloc(64 * 1024));
      sent += 64 * 1024;
      setTimeout(pump, 5);
    };
    pump();
    setTimeout(() => reject(new Error(`no answer to a streamed oversized body; client: ${events.join(', ')}; sent ${sent}`)), 10_000).unref();
  });
  t.is(streamed.status, 413);
  t.is(JSON.parse(streamed.body).error.code, 'AGT_ERR_TOO_LARGE');
  t.is((await api(sys, 'GET', '/v1/modules/streamed')).status, 404);

  const headers = await request({ socketPath: sys.agentSocket }, 'GET', '/v1/status', { headers: { 'x-junk': 'y'.repeat(20_000) } }).catch((e: Error) => e);
  t.true(!(headers instanceof Error) && headers.status === 431, String(headers instanceof Error ? headers.message : headers.status));
  t.is((await api(sys, 'GET', '/v1/health')).status, 200, 'agent fine afterwards');
});

test('routes: unknown paths 404, wrong methods 400, malformed escapes 400, unknown query parameters named', async (t) => {
  const nf = await api(sys, 'GET', '/v1/nope');
  t.is(nf.status, 404);
  t.is(nf.json().error.code, 'AGT_ERR_NOT_FOUND');
  t.is((await api(sys, 'DELETE', '/v1/status')).status, 400);
  t.is((await api(sys, 'GET', '/v1/apps/%E0%A4%A')).status, 400);
  const q = await api(sys, 'GET', '/v1/logs?tail=lots');
  t.is(q.status, 400);
  t.is(q.json().error.details.field, 'tail');
  const unknown = await api(sys, 'GET', '/v1/logs?colour=blue');
  t.is(unknown.status, 400);
  t.regex(unknown.json().error.message, /colour/);
  const ready = await api(sys, 'GET', '/v1/ready');
  t.is(ready.status, 200, ready.text);
});

test('logs: run output and agent events, filtered by app and run; follow streams new lines', async (t) => {
  const run = await api(sys, 'POST', '/v1/modules/hello/run', { body: { args: ['logged', 'line'] } });
  t.is(run.status, 200);
  const entries = (await api(sys, 'GET', '/v1/logs?app=hello&tail=50')).text.trim().split('\n').map((l) => JSON.parse(l));
  const lines = entries.filter((e) => e.stream === 'stdout').map((e) => e.line);
  t.deepEqual(lines.slice(-3), ['hello from wasm', 'logged', 'line']);
  const runId = entries.find((e) => e.line === 'logged').run;
  const byRun = (await api(sys, 'GET', `/v1/logs?run=${runId}`)).text.trim().split('\n').map((l) => JSON.parse(l));
  t.true(byRun.every((e) => e.run === runId));
  t.true(byRun.some((e) => e.stream === 'event' && /ended: exit/.test(e.line)));
  const agentEvents = (await api(sys, 'GET', '/v1/logs?source=agent')).text.trim().split('\n').map((l) => JSON.parse(l));
  t.true(agentEvents.some((e) => e.line === 'app deployed' && e.app === 'calc'));

  // follow: a streaming request sees a line produced after it started.
  const seen: string[] = [];
  const client = new AgentClient(sys.agentSocket);
  const ac = new AbortController();
  const following = client.logs({ app: 'hello', follow: true, tail: 0 }, (e) => seen.push(e.line), ac.signal);
  await new Promise((r) => setTimeout(r, 200));
  await api(sys, 'POST', '/v1/modules/hello/run', { body: { args: ['followed'] } });
  await waitFor('followed line', () => seen.includes('followed'), 5000);
  ac.abort();
  await following;
  t.false(seen.includes('logged'), 'tail=0: no old lines');
  client.close();
});

test('WS /v1/calls: many calls in flight on one socket, answered by id; refusals carry the id', async (t) => {
  const ws = new WebSocket(`ws+unix://${sys.agentSocket}:/v1/calls`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const answers = new Map<number | string | null, { results?: Array<{ value: number }>; error?: { code: string; details: { field?: string } } }>();
  ws.on('message', (d: Buffer) => {
    const m = JSON.parse(d.toString());
    answers.set(m.id, m);
  });
  for (let i = 0; i < 200; i++) ws.send(JSON.stringify({ id: i, app: 'calc', fn: 'add', args: [i, 1] }));
  ws.send(JSON.stringify({ id: 'bad', app: 'calc', fn: 'add', args: ['x'] }));
  ws.send('not json');
  await waitFor('all answers', () => answers.size === 202, 10_000);
  for (let i = 0; i < 200; i++) t.is(answers.get(i)!.results![0]!.value, i + 1);
  t.is(answers.get('bad')!.error!.code, 'AGT_ERR_BAD_REQUEST');
  t.is(answers.get(null)!.error!.code, 'AGT_ERR_BAD_REQUEST');
  ws.close();
});

test('a raw socket sending garbage gets 400 and the agent keeps serving', async (t) => {
  const text = await new Promise<string>((resolve) => {
    const s = net.connect(sys.agentSocket, () => s.write('NOT HTTP AT ALL\r\n\r\n'));
    let buf = '';
    s.on('data', (c) => (buf += c.toString()));
    s.on('close', () => resolve(buf));
    s.on('error', () => resolve(buf));
  });
  t.regex(text, /^HTTP\/1\.1 400/);
  t.is((await api(sys, 'GET', '/v1/health')).status, 200);
});
