import test, { type ExecutionContext } from 'ava';
import { z } from 'zod';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AgentClient } from '../agent/src/client/index.js';
import { waitForFile } from '../agent/src/cli/wait-socket.js';
import { AgentMetrics, type MetricSources } from '../agent/src/metrics/index.js';
import { decodeJson, encodeJson, exitSchema, lazySchema, memo, MsgType } from '../runner-proto/src/protocol/index.js';
import { ROOT } from './helpers/paths.js';

// What the agent and the CLI do to start faster (the QEMU guest's boot, docs/benchmarks.md): prom-client is
// loaded on the first scrape, with what was recorded before replayed into it; a CLI may start before the agent
// and wait (bounded) for its socket; schemas are built on first use and first parsed without zod's fast path.

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

/** A stand-in agent that answers every request with `body`, not yet listening on `socket` (in a fresh directory). */
function lateAgent(t: ExecutionContext, body: string): { socket: string; server: http.Server } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-wait-'));
  const server = http.createServer((_q, res) => res.end(body));
  t.teardown(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { socket: path.join(dir, 'agent.sock'), server };
}

test('a client given waitMs reaches an agent that starts listening later; without it, it fails at once', async (t) => {
  const { socket, server } = lateAgent(t, '# metrics\n');

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

test('waitForFile returns once the file appears, also in a directory made later', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wait-file-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'agent.sock');
  setTimeout(() => fs.writeFileSync(file, ''), 300);
  await waitForFile(file, 60_000);
  t.true(fs.existsSync(file), 'resolved because the file is there');

  // The directory itself appears later: nothing to watch at first, the poll finds it.
  const later = path.join(dir, 'later', 'agent.sock');
  setTimeout(() => {
    fs.mkdirSync(path.dirname(later));
    fs.writeFileSync(later, '');
  }, 300);
  await waitForFile(later, 60_000);
  t.true(fs.existsSync(later));
});

test('waitForFile is bounded: without the file it returns after the wait', async (t) => {
  const file = path.join(os.tmpdir(), `wait-file-none-${process.pid}.sock`);
  const started = Date.now();
  await waitForFile(file, 300);
  const took = Date.now() - started;
  t.false(fs.existsSync(file));
  t.true(took >= 250 && took < 5000, `returned after ${took} ms`);
});

test('the CLI with $WASMEDGE_AGENT_WAIT reaches an agent whose socket appears later', async (t) => {
  const { socket, server } = lateAgent(t, '# metrics from the late agent\n');
  const cli = new Promise<{ err: Error | null; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [path.join(ROOT, 'dist/agent/src/cli/main.js'), '--socket', socket, 'metrics'], { env: { ...process.env, WASMEDGE_AGENT_WAIT: '30' }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ err, stdout, stderr }),
    ),
  );
  setTimeout(() => server.listen(socket), 500);
  const r = await cli;
  t.is(r.err, null, r.stderr);
  t.is(r.stdout, '# metrics from the late agent\n');
});

test('a lazy schema is built on first use, once, and behaves as the built schema (nesting, instanceof, messages)', (t) => {
  let builds = 0;
  const build = memo(() => {
    builds += 1;
    return z.object({ n: z.number().int().positive('must be positive') });
  });
  const lazy = lazySchema(build);
  t.is(builds, 0, 'nothing built at definition');
  const outer = z.object({ inner: lazy.optional(), direct: lazy });
  t.is(builds, 1, 'built when first touched');
  t.true(lazy instanceof z.ZodObject);
  t.deepEqual(Object.keys(lazy.shape), ['n']);
  t.deepEqual(outer.parse({ direct: { n: 2 } }), { direct: { n: 2 } });
  const bad = outer.safeParse({ direct: { n: -1 } });
  const eager = z.object({ inner: build().optional(), direct: build() }).safeParse({ direct: { n: -1 } });
  t.false(bad.success);
  t.deepEqual(bad.error?.issues, eager.error?.issues, 'the same issues as the built schema');
  t.is(bad.error?.issues[0]?.message, 'must be positive');
  t.is(builds, 1, 'built once');
});

test('protocol decoding names the field whether or not zod compiled its fast path yet', (t) => {
  const body = encodeJson({ reason: 'exit', exitCode: 'x', stats: { wallMs: 1, peakPages: 1 } });
  // The first parses of a schema run without the fast path, later ones with it: one message for both.
  const messages = Array.from({ length: 12 }, () => t.throws(() => decodeJson(MsgType.EXIT, body, exitSchema))?.message);
  t.is(new Set(messages).size, 1);
  t.regex(messages[0]!, /^EXIT body field exitCode: /);
  t.is(decodeJson(MsgType.EXIT, encodeJson({ reason: 'exit', exitCode: 0, stats: { wallMs: 1, peakPages: 1 } }), exitSchema).exitCode, 0);
});
