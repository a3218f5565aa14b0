import { AgentError } from '../../../runner-proto/src/errors/index.js';

export interface GlobalOptions {
  socket?: string;
  json: boolean;
}

export interface RunOptions {
  env: Record<string, string>;
  timeMs?: number;
  memoryPages?: number;
  outputBytes?: number;
}

function usage(message: string): AgentError {
  return new AgentError('AGT_ERR_CONFIG_INVALID', message);
}

function intValue(flag: string, v: string | undefined): number {
  if (v === undefined) throw usage(`${flag} needs a value`);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw usage(`${flag} expects a non-negative integer, got "${v}"`);
  return n;
}

/**
 * Splits global options (before the command) from the command and its own arguments. Module arguments are
 * never interpreted: everything after `--`, or after the module in the original `wasmedge_emit FILE ARGS...`
 * form, is passed through untouched.
 */
export function takeGlobal(argv: string[]): { global: GlobalOptions; rest: string[] } {
  const global: GlobalOptions = { json: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') global.json = true;
    else if (a === '--socket') global.socket = argv[++i] ?? (() => { throw usage('--socket needs a path'); })();
    else if (a.startsWith('--socket=')) global.socket = a.slice('--socket='.length);
    else break;
  }
  return { global, rest: argv.slice(i) };
}

/**
 * Options of `run`. With `--`, everything before it is options and the module, everything after it the module's
 * arguments; without `--`, the arguments after the module belong to the module (like `wasmedge run MODULE ARGS`).
 */
export function takeRunOptions(argv: string[]): { opts: RunOptions; json: boolean; positional: string[]; passthrough: string[] } {
  const dash = argv.indexOf('--');
  const head = dash >= 0 ? argv.slice(0, dash) : argv;
  const opts: RunOptions = { env: {} };
  const positional: string[] = [];
  let json = false;
  let i = 0;
  for (; i < head.length; i++) {
    const a = head[i]!;
    if (a === '--env' || a === '-e') {
      const kv = head[++i];
      const eq = kv?.indexOf('=') ?? -1;
      if (kv === undefined || eq <= 0) throw usage(`--env expects NAME=VALUE, got "${kv ?? ''}"`);
      opts.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--time-limit') opts.timeMs = intValue(a, head[++i]);
    else if (a === '--memory-page-limit') opts.memoryPages = intValue(a, head[++i]);
    else if (a === '--output-limit') opts.outputBytes = intValue(a, head[++i]);
    else if (a === '--json') json = true;
    else if (a.startsWith('-') && (dash >= 0 || positional.length === 0)) throw usage(`unknown option ${a} for run`);
    else {
      positional.push(a);
      if (dash < 0) return { opts, json, positional, passthrough: head.slice(i + 1) };
    }
  }
  if (positional.length > 1) throw usage(`run takes one module; put its arguments after "--" (got "${positional[1]}")`);
  return { opts, json, positional, passthrough: dash >= 0 ? argv.slice(dash + 1) : [] };
}
