import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI_MAIN, LocalSystem } from '../agent/src/launch/index.js';
import { COMMAND_HELP_FOR_TESTS } from './helpers/agent-cli.js';
import { waitFor } from './helpers/agent-api.js';
import { bigModule } from './helpers/modules.js';
import { example } from './helpers/paths.js';

// wasmedge_emit: every command, --json everywhere, --help per command, exit codes scripts rely on.

const sys = new LocalSystem({ transport: 'ring' });
test.before(async () => {
  await sys.start();
});
test.after.always(async () => {
  await sys.stop();
});

function cliNoAgent(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_MAIN, '--socket', '/nonexistent/agent.sock', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help: the overview, and a page per command, without an agent', (t) => {
  const main = cliNoAgent(['--help']);
  t.is(main.code, 0);
  t.regex(main.stdout, /exit codes: run, invoke and call pass the module's code through/);
  for (const cmd of COMMAND_HELP_FOR_TESTS) {
    const r = cliNoAgent([cmd, '--help']);
    t.is(r.code, 0, cmd);
    t.regex(r.stdout, new RegExp(`^usage: wasmedge_emit ${cmd}`), cmd);
    t.is(cliNoAgent(['help', cmd]).stdout, r.stdout);
  }
  const none = cliNoAgent([]);
  t.is(none.code, 2);
});

test('usage errors exit 2 naming the problem; an absent agent exits 5', (t) => {
  const unknownOpt = cliNoAgent(['deploy', 'x', 'f.wasm', '--frobnicate']);
  t.is(unknownOpt.code, 2);
  t.regex(unknownOpt.stderr, /unknown option --frobnicate for deploy; see wasmedge_emit deploy --help/);
  t.is(cliNoAgent(['call', 'calc']).code, 2);
  t.is(cliNoAgent(['deploy', 'x', '--time-limit', 'soon']).code, 2);
  t.is(cliNoAgent(['nonsense']).code, 2);
  const away = cliNoAgent(['status']);
  t.is(away.code, 5);
  t.regex(away.stderr, /cannot reach the agent .*AGT_ERR_AGENT_UNAVAILABLE/);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.WASMEDGE_AGENT_TOKEN;
  delete env.WASMEDGE_AGENT_TOKEN_FILE;
  const tcp = spawnSync(process.execPath, [CLI_MAIN, '--tcp', '127.0.0.1:9', 'status'], { encoding: 'utf8', timeout: 20_000, env });
  t.is(tcp.status, 2, 'TCP needs a token');
  t.regex(tcp.stderr, /--tcp needs a bearer token/);
});

test.serial('deploy, apps, call, invoke, stop, start, undeploy: text and --json', async (t) => {
  const d = await sys.cli(['deploy', 'calc', example('calc'), '--pool-min', '1', '--pool-max', '2']);
  t.is(d.code, 0, d.stderr);
  t.regex(d.stdout, /^deployed calc sha256:[0-9a-f]{64} reactor in [\d.]+ ms\n$/);
  const dj = await sys.cli(['--json', 'deploy', 'echo', example('echo')]);
  t.is(dj.code, 0, dj.stderr);
  t.is(JSON.parse(dj.stdout).kind, 'command');
  const again = await sys.cli(['deploy', 'echo', example('echo')]);
  t.regex(again.stdout, /^unchanged echo/);

  const apps = await sys.cli(['apps']);
  t.regex(apps.stdout, /^APP +KIND +STATUS/);
  t.regex(apps.stdout, /calc +reactor +running +sha256:[0-9a-f]{12} +1\/1/);
  const appsJson = JSON.parse((await sys.cli(['apps', '--json'])).stdout) as Array<{ name: string; status: string }>;
  t.deepEqual(appsJson.map((a) => [a.name, a.status]), [['calc', 'running'], ['echo', 'running']]);
  t.is(JSON.parse((await sys.cli(['apps', 'calc', '--json'])).stdout).name, 'calc');

  t.is((await sys.cli(['call', 'calc', 'add', '-5', '7'])).stdout, '2\n');
  t.is((await sys.cli(['call', 'calc', 'mul64', 'i64:3037000499', '3037000499'])).stdout, '9223372030926249001\n', 'i64 beyond 2^53 exactly');
  t.is((await sys.cli(['call', 'calc', 'scale', 'f32:1.5', '2'])).stdout, '3\n');
  const cj = JSON.parse((await sys.cli(['call', 'calc', 'fib', '10', '--json'])).stdout);
  t.deepEqual(cj.results, [{ type: 'i32', value: 55 }]);
  const badArgs = await sys.cli(['call', 'calc', 'add', '1']);
  t.is(badArgs.code, 2);
  t.regex(badArgs.stderr, /add takes 2 argument/);

  const inv = await sys.cli(['invoke', 'echo'], { stdin: 'shout this\n' });
  t.is(inv.code, 0, inv.stderr);
  t.is(inv.stdout, 'SHOUT THIS\n');
  const ij = JSON.parse((await sys.cli(['invoke', 'echo', '--json'], { stdin: 'x' })).stdout);
  t.deepEqual([ij.exitCode, ij.reason, Buffer.from(ij.stdout, 'base64').toString()], [0, 'exit', 'X']);

  t.is((await sys.cli(['stop', 'calc'])).stdout, 'stopped calc\n');
  const stopped = await sys.cli(['call', 'calc', 'add', '1', '2']);
  t.is(stopped.code, 7, 'conflict');
  t.regex(stopped.stderr, /AGT_ERR_CONFLICT/);
  t.is(JSON.parse((await sys.cli(['start', 'calc', '--json'])).stdout).status, 'running');
  t.is((await sys.cli(['undeploy', 'echo'])).code, 0);
  const gone = await sys.cli(['invoke', 'echo']);
  t.is(gone.code, 4);
  t.is((await sys.cli(['stop', 'nope'])).code, 4);
});

test.serial('upload, ls, rm, run and status with --json; status shows the link, apps and instances', async (t) => {
  const up = JSON.parse((await sys.cli(['upload', example('hello'), '--json'])).stdout);
  t.is(up.name, 'hello');
  const ls = JSON.parse((await sys.cli(['ls', '--json'])).stdout) as Array<{ name: string }>;
  t.true(ls.some((m) => m.name === 'hello'));
  t.regex((await sys.cli(['ls'])).stdout, /^NAME +DIGEST +SIZE +KIND +UPDATED\n/);
  const run = await sys.cli(['run', 'hello', '--json', '--', 'a']);
  t.is(run.stdout, 'hello from wasm\na\n');
  t.is(JSON.parse(run.stderr.trim()).reason, 'exit');
  const status = await sys.cli(['status']);
  t.regex(status.stdout, /^runner: +connected via ring/m);
  t.regex(status.stdout, /^channel: \d+ frames out, \d+ in, 0 faults/m);
  t.regex(status.stdout, /calc +reactor +running +sha256:[0-9a-f]{12} +1 +1 +\d+/);
  const sj = JSON.parse((await sys.cli(['status', '--json'])).stdout);
  t.true(sj.runner.connected);
  t.is(sj.apps.find((a: { name: string }) => a.name === 'calc').runner.instances, 1);
  t.is(JSON.parse((await sys.cli(['rm', 'hello', '--json'])).stdout).name, 'hello');
  const metrics = await sys.cli(['metrics']);
  t.regex(metrics.stdout, /^wasmedge_runner_up 1$/m);
});

test.serial('logs: recent lines by app, --json, and -f follows until interrupted', async (t) => {
  await sys.cli(['upload', example('hello')]);
  await sys.cli(['run', 'hello', '--', 'first']);
  const logs = await sys.cli(['logs', 'hello', '--tail', '10']);
  t.is(logs.code, 0);
  t.regex(logs.stdout, /hello#\d+ stdout: first$/m);
  const lj = (await sys.cli(['logs', '--agent', '--json', '--tail', '5'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.true(lj.length > 0 && lj.every((e) => e.source === 'agent'));

  const follower = spawn(process.execPath, [CLI_MAIN, '--socket', sys.agentSocket, 'logs', 'hello', '-f', '--tail', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  follower.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((r) => setTimeout(r, 500));
  await sys.cli(['run', 'hello', '--', 'followed']);
  await waitFor('followed line', () => out.includes('stdout: followed'), 5000);
  follower.kill('SIGINT');
  const code = await new Promise<number | null>((r) => follower.once('exit', (c) => r(c)));
  t.is(code, 0);
  t.false(out.includes('stdout: first'));
});

test.serial('a progress bar shows for a large upload on a terminal, and never when piped', async (t) => {
  const file = path.join(sys.dir, 'big.wasm');
  fs.writeFileSync(file, bigModule(fs.readFileSync(example('hello')), 3 * 1024 * 1024));
  const piped = await sys.cli(['upload', file]);
  t.is(piped.code, 0, piped.stderr);
  t.is(piped.stderr, '');
  const script = spawnSync('script', ['-qfec', `${process.execPath} ${CLI_MAIN} --socket ${sys.agentSocket} upload ${file} --name big2`, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
  if (script.error) {
    t.log('script(1) not available; the terminal case was not exercised');
    return;
  }
  t.regex(script.stdout, /upload big2 \[/);
  t.regex(script.stdout, /(stored|unchanged) big2 sha256:/);
});
