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

/** Options of `run` that come before the module or before `--`. */
export function takeRunOptions(argv: string[]): { opts: RunOptions; json: boolean; positional: string[]; passthrough: string[] } {
  const opts: RunOptions = { env: {} };
  const positional: string[] = [];
  let json = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      return { opts, json, positional, passthrough: argv.slice(i + 1) };
    } else if (a === '--env' || a === '-e') {
      const kv = argv[++i];
      const eq = kv?.indexOf('=') ?? -1;
      if (kv === undefined || eq <= 0) throw usage(`--env expects NAME=VALUE, got "${kv ?? ''}"`);
      opts.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--time-limit') opts.timeMs = intValue(a, argv[++i]);
    else if (a === '--memory-page-limit') opts.memoryPages = intValue(a, argv[++i]);
    else if (a === '--output-limit') opts.outputBytes = intValue(a, argv[++i]);
    else if (a === '--json') json = true;
    else if (a.startsWith('-') && positional.length === 0) throw usage(`unknown option ${a} for run`);
    else {
      positional.push(a);
      // After the module, the rest belongs to the module (like `wasmedge run MODULE ARGS...`).
      if (positional.length === 1) return { opts, json, positional, passthrough: argv.slice(i + 1).filter((x, j) => !(j === 0 && x === '--')) };
    }
  }
  return { opts, json, positional, passthrough: [] };
}
