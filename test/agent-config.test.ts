import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AGENT_USAGE, RENAMED_KEYS, loadAgentConfig } from '../agent/src/config/index.js';
import { AGENT_MAIN } from '../agent/src/launch/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-config-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NO_FILE = { WASMEDGE_AGENT_CONFIG: path.join(tmp, 'absent-but-explicit.json') };
/** An environment with no config file at all (the default path may exist on a developer machine). */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const f = path.join(tmp, 'empty.json');
  fs.writeFileSync(f, '{}');
  return { WASMEDGE_AGENT_CONFIG: f, ...extra };
}

function writeConfig(name: string, value: unknown): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value));
  return f;
}

function refused(t: import('ava').ExecutionContext, fn: () => unknown, pattern: RegExp, field?: string): void {
  const e = t.throws(fn) as AgentError;
  t.true(e instanceof AgentError);
  t.is(e.code, 'AGT_ERR_CONFIG_INVALID');
  t.regex(e.message, pattern);
  if (field !== undefined) t.is(e.details.field, field);
}

test('flags alone give a valid config with defaults, deeply frozen', (t) => {
  const { config } = loadAgentConfig(['--region', '/dev/shm/x', '--store', '/tmp/s', '--socket', '/tmp/a.sock'], env());
  t.deepEqual(config.runner, { kind: 'ring', path: '/dev/shm/x', notify: 'polling' });
  t.is(config.stateDir, '/tmp/s');
  t.is(config.api.socket, '/tmp/a.sock');
  t.is(config.api.socketMode, 0o660);
  t.is(config.policy.maxModuleBytes, 64 * 1024 * 1024);
  t.false(config.trust.requireSignature);
  t.is(config.inbox, undefined);
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.api));
  t.true(Object.isFrozen(config.policy.allowedImportModules));
  t.throws(() => {
    (config.api as { socket: string }).socket = 'x';
  });
});

test('file, then environment, then flags: later sources win, key by key', (t) => {
  const file = writeConfig('layers.json', {
    stateDir: '/var/lib/from-file',
    runner: { kind: 'stream', path: '/run/runner.sock' },
    api: { socket: '/run/file.sock', socketMode: '0640', maxJsonBytes: 4096 },
    logs: { level: 'debug' },
  });
  const { config } = loadAgentConfig(['--socket', '/run/flag.sock'], { WASMEDGE_AGENT_CONFIG: file, WASMEDGE_AGENT_SOCKET: '/run/env.sock', WASMEDGE_AGENT_STATE_DIR: '/var/lib/from-env' });
  t.is(config.api.socket, '/run/flag.sock');
  t.is(config.stateDir, '/var/lib/from-env');
  t.is(config.api.socketMode, 0o640);
  t.is(config.api.maxJsonBytes, 4096);
  t.deepEqual(config.runner, { kind: 'stream', path: '/run/runner.sock' });
  t.is(config.logs.level, 'debug');
  t.deepEqual(config.source, [file, 'environment', 'options']);
  // A runner given by flag replaces the file's whole (it is a union), and --notify adjusts a ring from the file.
  const ring = writeConfig('ring.json', { runner: { kind: 'ring', path: '/dev/shm/r' } });
  t.deepEqual(loadAgentConfig(['--runner-serial', '/dev/vport0p1'], { WASMEDGE_AGENT_CONFIG: ring }).config.runner, { kind: 'serial', path: '/dev/vport0p1' });
  t.deepEqual(loadAgentConfig(['--notify', 'futex'], { WASMEDGE_AGENT_CONFIG: ring }).config.runner, { kind: 'ring', path: '/dev/shm/r', notify: 'futex' });
});

test('renamed keys are answered with their new name', (t) => {
  for (const [old, now] of [['store', 'stateDir'], ['socket', 'api.socket'], ['maxModuleBytes', 'policy.maxModuleBytes']] as const) {
    const f = writeConfig(`renamed-${old}.json`, { [old]: 'x', runner: { kind: 'stream', path: '/r' } });
    refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: f }), new RegExp(`key ${old} was renamed, use ${now.replace('.', '\\.')} instead`), old);
  }
  const nested = writeConfig('renamed-nested.json', { runner: { kind: 'stream', path: '/r' }, inbox: { path: '/srv/inbox' } });
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: nested }), /inbox\.path was renamed, use inbox\.dir instead/, 'inbox.path');
  t.true(Object.keys(RENAMED_KEYS).length >= 10);
});

test('errors name the field: unknown keys, wrong types, bad values', (t) => {
  const unknown = writeConfig('unknown.json', { runner: { kind: 'stream', path: '/r' }, api: { sockt: '/x' } });
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: unknown }), /agent config api: .*sockt/, 'api');
  const type = writeConfig('type.json', { runner: { kind: 'stream', path: '/r' }, policy: { maxModuleBytes: 'big' } });
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: type }), /policy\.maxModuleBytes/, 'policy.maxModuleBytes');
  const mode = writeConfig('mode.json', { runner: { kind: 'stream', path: '/r' }, api: { socketMode: '0999' } });
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: mode }), /api\.socketMode/, 'api.socketMode');
  const notJson = writeConfig('broken.json', '{ "runner": ');
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: notJson }), /not valid JSON/);
  refused(t, () => loadAgentConfig([], NO_FILE), /cannot read config file .*ENOENT/);
  refused(t, () => loadAgentConfig([], env()), /no runner channel/, 'runner');
  refused(t, () => loadAgentConfig(['--region', '/a', '--runner-socket', '/b'], env()), /give one of --region/, 'runner');
  refused(t, () => loadAgentConfig(['--region', '/a', '--max-module', 'lots'], env()), /--max-module expects a non-negative integer/);
  refused(t, () => loadAgentConfig(['--region', '/a', '--bogus'], env()), /Unknown option '--bogus'/);
  refused(t, () => loadAgentConfig(['--region', '/a', '--tcp', 'nonsense'], env()), /--tcp expects HOST:PORT/);
});

test('cross-field rules live in validate() and name both fields', (t) => {
  refused(t, () => loadAgentConfig(['--region', '/a', '--tcp', '127.0.0.1:0'], env()), /api\.tcp: the TCP listener needs a bearer token/, 'api.tcp');
  refused(t, () => loadAgentConfig(['--region', '/a', '--require-signature'], env()), /trust\.requireSignature: requiring signatures needs trust\.keysDir/, 'trust.requireSignature');
  const open = path.join(tmp, 'token-open');
  fs.writeFileSync(open, 'x'.repeat(32), { mode: 0o644 });
  fs.chmodSync(open, 0o644);
  refused(t, () => loadAgentConfig(['--region', '/a', '--tcp', ':0', '--token-file', open], env()), /readable by every user .*chmod 600/, 'api.tcp.tokenFile');
  const short = path.join(tmp, 'token-short');
  fs.writeFileSync(short, 'abc\n', { mode: 0o600 });
  refused(t, () => loadAgentConfig(['--region', '/a', '--tcp', ':0', '--token-file', short], env()), /at least 16/, 'api.tcp.tokenFile');
  refused(t, () => loadAgentConfig(['--region', '/a', '--store', '/srv/state', '--inbox', '/srv'], env()), /inbox\.dir: \/srv contains stateDir/, 'inbox.dir');
  refused(t, () => loadAgentConfig(['--region', '/a', '--store', '/srv/state', '--inbox', '/srv/state/blobs/in'], env()), /inside the store/, 'inbox.dir');
  const pool = writeConfig('pool.json', { runner: { kind: 'stream', path: '/r' }, apps: { pool: { min: 5, max: 2 } } });
  refused(t, () => loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: pool }), /apps\.pool\.min: 5 is above apps\.pool\.max 2/, 'apps.pool.min');
  // The good case: a private token file is read once into the frozen config.
  const good = path.join(tmp, 'token-good');
  fs.writeFileSync(good, 'a-very-secret-token-123\n', { mode: 0o600 });
  const { config } = loadAgentConfig(['--region', '/a', '--tcp', '127.0.0.1:0', '--token-file', good], env());
  t.is(config.api.token, 'a-very-secret-token-123');
  t.deepEqual(config.api.tcp, { host: '127.0.0.1', port: 0, tokenFile: good });
});

test('environment overrides cover the runner, inbox, trust and token', (t) => {
  const { config } = loadAgentConfig([], env({
    WASMEDGE_AGENT_RUNNER_SOCKET: '/run/r.sock',
    WASMEDGE_AGENT_INBOX: '/srv/inbox',
    WASMEDGE_AGENT_TRUST_KEYS: '/etc/keys',
    WASMEDGE_AGENT_REQUIRE_SIGNATURE: 'yes',
    WASMEDGE_AGENT_TCP: '[::1]:9000',
    WASMEDGE_AGENT_TOKEN: 'sixteen-chars-or-more',
  }));
  t.deepEqual(config.runner, { kind: 'stream', path: '/run/r.sock' });
  t.deepEqual(config.inbox, { dir: '/srv/inbox', settleMs: 500 });
  t.deepEqual(config.trust, { keysDir: '/etc/keys', requireSignature: true });
  t.is(config.api.tcp?.host, '::1');
  t.is(config.api.tcp?.port, 9000);
  t.is(config.api.token, 'sixteen-chars-or-more');
  const bad = t.throws(() => loadAgentConfig([], env({ WASMEDGE_AGENT_REGION: '/a', WASMEDGE_AGENT_REQUIRE_SIGNATURE: 'maybe' }))) as AgentError;
  t.regex(bad.message, /WASMEDGE_AGENT_REQUIRE_SIGNATURE expects true or false/);
});

test('the daemon: --help prints usage and exits 0; --check-config prints the resolved config with the token masked', (t) => {
  const help = spawnSync(process.execPath, [AGENT_MAIN, '--help'], { encoding: 'utf8', env: { ...process.env, ...env() }, timeout: 20_000 });
  t.is(help.status, 0);
  t.is(help.stdout.trim(), AGENT_USAGE);
  const tokenFile = path.join(tmp, 'token-check');
  fs.writeFileSync(tokenFile, 'check-config-token-value', { mode: 0o600 });
  const check = spawnSync(process.execPath, [AGENT_MAIN, '--region', '/dev/shm/none', '--tcp', ':0', '--token-file', tokenFile, '--check-config'], { encoding: 'utf8', env: { ...process.env, ...env() }, timeout: 20_000 });
  t.is(check.status, 0, check.stderr);
  const shown = JSON.parse(check.stdout) as { api: { token: string }; runner: { path: string } };
  t.is(shown.api.token, '***');
  t.is(shown.runner.path, '/dev/shm/none');
  t.false(check.stdout.includes('check-config-token-value'));
  const bad = spawnSync(process.execPath, [AGENT_MAIN, '--region', '/dev/shm/none', '--require-signature'], { encoding: 'utf8', env: { ...process.env, ...env() }, timeout: 20_000 });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /^wasmedge-agent: config trust\.requireSignature: /);
});

test('the shipped example config and systemd unit agree and validate', (t) => {
  const root = path.resolve(path.dirname(AGENT_MAIN), '../../../..');
  const example = path.join(root, 'agent/systemd/config.example.json');
  const { config } = loadAgentConfig([], { WASMEDGE_AGENT_CONFIG: example });
  t.is(config.api.socket, '/run/wasmedge-agent/agent.sock');
  t.true(config.trust.requireSignature);
  const unit = fs.readFileSync(path.join(root, 'agent/systemd/wasmedge-agent.service'), 'utf8');
  t.regex(unit, /^ExecStart=.* --config \/etc\/wasmedge-agent\/config\.json$/m);
  t.regex(unit, /^RuntimeDirectory=wasmedge-agent$/m, 'the socket directory the config names');
  t.regex(unit, /^StateDirectory=wasmedge-agent$/m, 'the stateDir the config names');
  t.regex(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'reload re-reads the trust store');
});
