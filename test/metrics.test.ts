import test from 'ava';
import fs from 'node:fs';
import { LocalSystem } from '../agent/src/launch/index.js';
import { api, waitFor } from './helpers/agent-api.js';
import { example } from './helpers/paths.js';

// Prometheus metrics: deploys, runs, calls, latencies, channel counters and runner health, as scraped.

const sys = new LocalSystem({ transport: 'ring' });
test.before(async () => {
  await sys.start();
});
test.after.always(async () => {
  await sys.stop();
});

/** Parses the text exposition format into "name{labels}" -> value. */
async function scrape(): Promise<{ values: Map<string, number>; contentType: string; text: string }> {
  const r = await api(sys, 'GET', '/metrics');
  const values = new Map<string, number>();
  for (const line of r.text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { values, contentType: String(r.headers['content-type']), text: r.text };
}

test.serial('deploys, calls, runs and invokes are counted and timed; the channel and the runner are visible', async (t) => {
  await api(sys, 'PUT', '/v1/apps/calc', { body: fs.readFileSync(example('calc')), headers: { 'content-type': 'application/wasm', 'x-app-spec': '{"pool":{"min":1,"max":2}}' } });
  await api(sys, 'PUT', '/v1/apps/hello', { body: fs.readFileSync(example('hello')), headers: { 'content-type': 'application/wasm' } });
  for (let i = 0; i < 25; i++) await api(sys, 'POST', '/v1/apps/calc/call', { body: { fn: 'add', args: [i, i] } });
  await api(sys, 'POST', '/v1/apps/hello/invoke', { body: '' });
  await api(sys, 'POST', '/v1/modules/hello/run', { body: {} });
  await api(sys, 'PUT', '/v1/apps/bad', { body: { module: 'nope' } });
  const { values: m, contentType, text } = await scrape();
  t.regex(contentType, /^text\/plain; version=0\.0\.4/);
  t.is(m.get('wasmedge_agent_deploys_total{result="deployed"}'), 2);
  t.is(m.get('wasmedge_agent_deploys_total{result="failed"}'), 1);
  t.is(m.get('wasmedge_agent_deploy_duration_seconds_count{transfer="yes"}'), 2);
  t.is(m.get('wasmedge_agent_calls_total{app="calc",result="ok"}'), 25);
  t.is(m.get('wasmedge_agent_call_duration_seconds_count{app="calc"}'), 25);
  t.true((m.get('wasmedge_agent_call_duration_seconds_bucket{le="+Inf",app="calc"}') ?? 0) === 25, 'histogram buckets present');
  t.is(m.get('wasmedge_agent_invokes_total{app="hello",result="exit"}'), 1);
  await waitFor('run counted', async () => (await scrape()).values.get('wasmedge_agent_runs_total{reason="exit"}') === 1, 3000);
  t.true((m.get('wasmedge_channel_frames_out_total') ?? 0) > 25);
  t.true((m.get('wasmedge_channel_frames_in_total') ?? 0) > 25);
  t.is(m.get('wasmedge_channel_faults_total'), 0);
  t.true(m.has('wasmedge_channel_kicks_total'));
  t.is(m.get('wasmedge_runner_up'), 1);
  t.is(m.get('wasmedge_runner_connects_total'), 1);
  t.is(m.get('wasmedge_agent_apps{state="running"}'), 2);
  t.is(m.get('wasmedge_runner_apps'), 2);
  t.true((m.get('wasmedge_runner_app_instances{app="calc",state="idle"}') ?? 0) >= 1);
  t.true((m.get('wasmedge_agent_api_requests_total{route="POST /v1/apps/:name/call",status="200"}') ?? 0) === 25);
  t.true((m.get('wasmedge_agent_process_resident_memory_bytes') ?? 0) > 10e6);
  t.regex(text, /# HELP wasmedge_agent_call_duration_seconds /);
});

test.serial('a runner restart shows as a new connection and a converge time; channel counters keep counting', async (t) => {
  const before = (await scrape()).values;
  await sys.restartRunner();
  await waitFor('reconnected and converged', async () => {
    const m = (await scrape()).values;
    return m.get('wasmedge_runner_connects_total') === 2 && m.get('wasmedge_runner_apps') === 2;
  }, 5000);
  const after = (await scrape()).values;
  t.true(after.get('wasmedge_channel_frames_out_total')! > before.get('wasmedge_channel_frames_out_total')!, 'counters survive the reconnect');
  const converge = after.get('wasmedge_agent_last_converge_seconds')!;
  t.true(converge > 0 && converge < 1, `converged in ${converge} s`);
  t.true((after.get('wasmedge_agent_reconciles_total{trigger="runner-restart",result="ok"}') ?? 0) >= 1);
});
