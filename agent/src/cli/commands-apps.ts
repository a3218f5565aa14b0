import fs from 'node:fs';
import type { AppSettings, AppView, DeployOutcome } from '../apps/index.js';
import type { AgentClient } from '../client/index.js';
import { envPairs, parseFlags, usage } from './args.js';
import { EXIT } from './exit-codes.js';
import { looksLikeFile, out, progressFor, readFileOrFail, shortDigest, signatureFor, table } from './output.js';

const DEPLOY_FLAGS = {
  module: 'string',
  kind: 'string',
  arg: 'repeat',
  env: 'repeat',
  'time-limit': 'int',
  'memory-page-limit': 'int',
  'output-limit': 'int',
  'gas-limit': 'int',
  'pool-min': 'int',
  'pool-max': 'int',
  'idle-ms': 'int',
  'no-autostart': 'boolean',
  autostart: 'boolean',
  pin: 'string',
  unpin: 'boolean',
  sig: 'string',
  restart: 'boolean',
} as const;

function describeDeploy(o: DeployOutcome): string {
  const what = o.unchanged ? 'unchanged' : o.applied ? (o.previous && o.previous !== o.digest ? 'hot-swapped' : 'deployed') : 'recorded (runner away; deploys when it is back)';
  const from = o.previous && o.previous !== o.digest ? ` (was ${shortDigest(o.previous)})` : '';
  return `${what} ${o.app} ${o.digest} ${o.kind}${from}${o.signer ? ` signed by ${o.signer}` : ''} in ${o.ms.toFixed(1)} ms`;
}

export async function deploy(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('deploy', argv, DEPLOY_FLAGS);
  const v = f.values;
  const [app, file, extra] = f.positional;
  if (!app || (file === undefined) === (v.module === undefined) || extra !== undefined) {
    throw usage('usage: wasmedge_emit deploy APP FILE|--module NAME|DIGEST [OPTIONS]; see wasmedge_emit deploy --help');
  }
  if (v.kind !== undefined && v.kind !== 'command' && v.kind !== 'reactor') throw usage(`--kind expects command or reactor, got "${String(v.kind)}"`);
  if (v.pin !== undefined && v.unpin) throw usage('give --pin DIGEST or --unpin, not both');
  const limits: Record<string, number> = {};
  if (v['time-limit'] !== undefined) limits.timeMs = v['time-limit'] as number;
  if (v['memory-page-limit'] !== undefined) limits.memoryPages = v['memory-page-limit'] as number;
  if (v['output-limit'] !== undefined) limits.outputBytes = v['output-limit'] as number;
  if (v['gas-limit'] !== undefined) limits.gas = v['gas-limit'] as number;
  const pool: Record<string, number> = {};
  if (v['pool-min'] !== undefined) pool.min = v['pool-min'] as number;
  if (v['pool-max'] !== undefined) pool.max = v['pool-max'] as number;
  if (v['idle-ms'] !== undefined) pool.idleMs = v['idle-ms'] as number;
  const settings: AppSettings = {
    ...(v.kind ? { kind: v.kind as 'command' | 'reactor' } : {}),
    ...(v.arg ? { args: v.arg as string[] } : {}),
    ...(v.env ? { env: envPairs(v.env as string[]) } : {}),
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(Object.keys(pool).length ? { pool } : {}),
    ...(v['no-autostart'] ? { autostart: false } : v.autostart ? { autostart: true } : {}),
    ...(v.pin !== undefined ? { pin: v.pin as string } : v.unpin ? { pin: null } : {}),
    ...(v.restart ? { restart: true } : {}),
  };
  const asJson = json || v.json === true;
  let r: DeployOutcome;
  if (file !== undefined) {
    if (!looksLikeFile(file) && !fs.existsSync(file)) throw usage(`no module file ${file} (to deploy a stored module use --module ${file})`);
    const bytes = readFileOrFail(file, 'module');
    const signature = signatureFor(file, v.sig as string | undefined);
    const bar = await progressFor(`deploy ${app}`, bytes.length, asJson);
    try {
      r = await client.deploy(app, settings, { bytes, ...(signature ? { signature } : {}), ...(bar ? { onProgress: (n: number) => bar.update(n) } : {}) });
    } finally {
      bar?.stop();
    }
  } else {
    r = await client.deploy(app, { ...settings, module: v.module as string });
  }
  out(asJson ? JSON.stringify(r) : describeDeploy(r));
  return EXIT.OK;
}

function instancesOf(a: AppView): string {
  if (!a.runner) return '-';
  return a.kind === 'reactor' ? `${a.runner.idle}/${a.runner.instances}${a.runner.draining ? ` (+${a.runner.draining} draining)` : ''}` : '-';
}

export async function apps(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('apps', argv, {});
  const one = f.positional[0];
  const list = one ? [await client.app(one)] : await client.apps();
  if (json || f.values.json) out(JSON.stringify(one ? list[0] : list));
  else if (list.length > 0) {
    const rows = [['APP', 'KIND', 'STATUS', 'DIGEST', 'IDLE/INST', 'CALLS', 'AUTOSTART'], ...list.map((a) => [a.name, a.kind, a.status, shortDigest(a.digest), instancesOf(a), String(a.runner?.calls ?? 0), a.autostart ? 'yes' : 'no'])];
    for (const line of table(rows)) out(line);
    for (const a of list) if (a.lastError) out(`  ${a.name}: last error ${a.lastError.code}: ${a.lastError.message}`);
  }
  return EXIT.OK;
}

export async function lifecycle(client: AgentClient, cmd: 'stop' | 'start' | 'undeploy', argv: string[], json: boolean): Promise<number> {
  const f = parseFlags(cmd, argv, {});
  const app = f.positional[0];
  if (f.positional.length !== 1 || !app) throw usage(`usage: wasmedge_emit ${cmd} APP`);
  const r = cmd === 'stop' ? await client.stop(app) : cmd === 'start' ? await client.start(app) : await client.removeApp(app);
  if (json || f.values.json) out(JSON.stringify(r));
  else out(`${cmd === 'stop' ? 'stopped' : cmd === 'start' ? 'started' : 'undeployed'} ${app}`);
  return EXIT.OK;
}

/** `i64:5`, `f32:1.5`: an explicitly typed argument; anything else a number or a decimal string. */
function parseCallArg(a: string): number | string | { type: string; value: number | string } {
  const m = /^(i32|i64|f32|f64):(.+)$/.exec(a);
  if (m) return m[1] === 'i64' ? { type: 'i64', value: m[2]! } : { type: m[1]!, value: Number(m[2]) };
  if (/^-?\d+$/.test(a) && !Number.isSafeInteger(Number(a))) return a;
  const n = Number(a);
  if (a.trim() === '' || Number.isNaN(n)) throw usage(`call arguments are numbers or TYPE:VALUE, got "${a}"`);
  return n;
}

export async function call(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('call', argv, { 'time-limit': 'int', 'gas-limit': 'int' });
  const [app, fn, ...args] = [...f.positional, ...f.rest];
  if (!app || !fn) throw usage('usage: wasmedge_emit call APP FN [ARGS...]');
  const limits: { timeMs?: number; gas?: number } = {};
  if (f.values['time-limit'] !== undefined) limits.timeMs = f.values['time-limit'] as number;
  if (f.values['gas-limit'] !== undefined) limits.gas = f.values['gas-limit'] as number;
  const r = await client.call(app, fn, args.map(parseCallArg), Object.keys(limits).length ? limits : undefined);
  if (json || f.values.json) out(JSON.stringify(r));
  else if (r.ok) for (const v of r.results ?? []) out(String(v.value));
  else process.stderr.write(`wasmedge_emit: ${app}.${fn}: ${r.reason}${r.message ? `: ${r.message}` : ''} (exit ${r.exitCode})\n`);
  return r.ok ? EXIT.OK : (r.exitCode ?? EXIT.FAILURE);
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function invoke(client: AgentClient, argv: string[], json: boolean): Promise<number> {
  const f = parseFlags('invoke', argv, { input: 'string' });
  const app = f.positional[0];
  if (f.positional.length !== 1 || !app) throw usage('usage: wasmedge_emit invoke APP [--input FILE]');
  const stdin = f.values.input ? readFileOrFail(f.values.input as string, 'input') : await readStdin();
  const r = await client.invoke(app, stdin);
  if (json || f.values.json) out(JSON.stringify({ exitCode: r.exitCode, reason: r.reason, ...(r.message ? { message: r.message } : {}), stdout: r.stdout.toString('base64') }));
  else {
    process.stdout.write(r.stdout);
    if (r.reason !== 'exit') process.stderr.write(`wasmedge_emit: ${app}: ${r.reason}${r.message ? `: ${r.message}` : ''} (exit ${r.exitCode})\n`);
  }
  return r.exitCode;
}
