import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AgentClient } from '../agent/src/client/index.js';
import { AgentMetrics, type MetricSources } from '../agent/src/metrics/index.js';

// What the agent and the CLI do to start faster (the QEMU guest's boot, docs/benchmarks.md): prom-client is
// loaded on the first scrape, with what was recorded before replayed into it; a CLI may start before the agent
// and wait (bounded) for its socket.

const sources: MetricSources = {
  channel: () => ({ framesIn: 3, framesOut: 4, faults: 0, kicks: 0 }),
  runner: () => ({ connected: true, connects: 1, inFlight: 0, lastPingMs: 2 }),
  apps: () => ({ running: 1, stopped: 0 }),
  runnerApps: async () => [],
  logs: () => ({ dropped: 0, lines: 5 }),
};

test('metrics recorded before prom-client is loaded are all in the first scrape', async (t) => {
  const m = new AgentMetrics(sources, { processMetrics: false });
  m.uploads.inc({ result: 'stored' });
  m.uploads.inc({ result: 'stored' });
  m.uploadBytes.inc(25937);
  m.deployDuration.observe({ transfer: 'yes' }, 0.02);
  m.runDuration.observe(0.5);
  m.convergeSeconds.set(1.5);
  const text = await m.text();
  t.regex(text, /^wasmedge_agent_uploads_total\{result="stored"\} 2$/m);
  t.regex(text, /^wasmedge_agent_upload_bytes_total 25937$/m);
  t.regex(text, /^wasmedge_agent_deploy_duration_seconds_count\{transfer="yes"\} 1$/m);
  t.regex(text, /^wasmedge_agent_run_duration_seconds_sum 0\.5$/m);
  t.regex(text, /^wasmedge_agent_last_converge_seconds 1\.5$/m);
  t.regex(text, /^wasmedge_channel_frames_out_total 4$/m);
  t.false(/process_cpu/.test(text), 'no process metrics when they are off');
  t.regex(m.contentType, /^text\/plain; version=0\.0\.4/);
  // Once loaded, recording goes straight to prom-client.
  m.uploads.inc({ result: 'stored' });
  t.regex(await m.text(), /^wasmedge_agent_uploads_total\{result="stored"\} 3$/m);
});

test('start() loads prom-client with process metrics; a second start() is the same load', async (t) => {
  const m = new AgentMetrics(sources, { processMetrics: true });
  m.runs.inc({ reason: 'exit' });
  const [a, b] = await Promise.all([m.start(), m.start()]);
  t.is(a, b);
  const text = await m.text();
  t.regex(text, /^wasmedge_agent_process_cpu_user_seconds_total /m);
  t.regex(text, /^wasmedge_agent_runs_total\{reason="exit"\} 1$/m);
});

test('a client given waitMs reaches an agent that starts listening later; without it, it fails at once', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-wait-'));
  const socket = path.join(dir, 'agent.sock');
  const server = http.createServer((_q, res) => res.end('# metrics\n'));
  t.teardown(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const impatient = new AgentClient(socket);
  const e = await t.throwsAsync(impatient.metrics());
  t.is((e as { code?: string }).code, 'AGT_ERR_AGENT_UNAVAILABLE');
  impatient.close();

  const waiting = new AgentClient(socket, { waitMs: 10_000 });
  const started = Date.now();
  setTimeout(() => server.listen(socket), 400);
  t.is(await waiting.metrics(), '# metrics\n');
  t.true(Date.now() - started >= 350, 'it did wait for the socket');
  waiting.close();
});

test('the wait is bounded: no agent within waitMs is AGT_ERR_AGENT_UNAVAILABLE', async (t) => {
  const client = new AgentClient(path.join(os.tmpdir(), `agent-wait-none-${process.pid}.sock`), { waitMs: 300 });
  const started = Date.now();
  const e = await t.throwsAsync(client.metrics());
  t.is((e as { code?: string }).code, 'AGT_ERR_AGENT_UNAVAILABLE');
  const took = Date.now() - started;
  t.true(took >= 250 && took < 5000, `gave up after ${took} ms`);
  client.close();
});
