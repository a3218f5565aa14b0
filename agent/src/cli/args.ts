import { AgentError } from '../../../runner-proto/src/errors/index.js';

export interface GlobalOptions {
  socket?: string;
  tcp?: string;
  tokenFile?: string;
  timeoutMs?: number;
  json: boolean;
}

export interface RunOptions {
  env: Record<string, string>;
  timeMs?: number;
  memoryPages?: number;
  outputBytes?: number;
  gas?: number;
}

export function usage(message: string): AgentError {
  return new AgentError('AGT_ERR_CONFIG_INVALID', message);
}

export function intValue(flag: string, v: string | undefined): number {
  if (v === undefined) throw usage(`${flag} needs a value`);
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 0) throw usage(`${flag} expects a non-negative integer, got "${v}"`);
  return n;
}

function need(flag: string, v: string | undefined): string {
  if (v === undefined) throw usage(`${flag} needs a value`);
  return v;
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
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string => inline ?? need(flag, argv[++i]);
    if (flag === '--json') global.json = true;
    else if (flag === '--socket') global.socket = value();
    else if (flag === '--tcp') global.tcp = value();
    else if (flag === '--token-file') global.tokenFile = value();
    else if (flag === '--timeout') global.timeoutMs = intValue('--timeout', value());
    else break;
  }
  return { global, rest: argv.slice(i) };
}

export type FlagKind = 'string' | 'boolean' | 'repeat' | 'int';

export interface ParsedFlags {
  readonly values: Record<string, string | boolean | number | string[] | undefined>;
  readonly positional: string[];
  /** Everything after `--`. */
  readonly rest: string[];
}

/**
 * Flags of one command. Values may follow the flag or be joined with `=`. Tokens that look like negative
 * numbers are positional (`call calc add -1 2`). `--json` and `--help` are accepted by every command.
 */
export function parseFlags(cmd: string, argv: readonly string[], spec: Readonly<Record<string, FlagKind>>): ParsedFlags {
  const all: Record<string, FlagKind> = { json: 'boolean', help: 'boolean', ...spec };
  const values: ParsedFlags['values'] = {};
  const positional: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h') {
      values.help = true;
      continue;
    }
    if (!a.startsWith('-') || /^-\d/.test(a) || a === '-') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = (eq > 0 ? a.slice(0, eq) : a).replace(/^--?/, '');
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    const kind = all[name];
    if (kind === undefined) throw usage(`unknown option ${a.slice(0, eq > 0 ? eq : undefined)} for ${cmd}; see wasmedge_emit ${cmd} --help`);
    if (kind === 'boolean') {
      if (inline !== undefined) throw usage(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    const v = inline ?? need(`--${name}`, argv[++i]);
    if (kind === 'repeat') ((values[name] as string[] | undefined) ?? (values[name] = [])).push(v);
    else if (kind === 'int') values[name] = intValue(`--${name}`, v);
    else values[name] = v;
  }
  return { values, positional, rest: argv.slice(i) };
}

/** NAME=VALUE pairs of repeated --env flags. */
export function envPairs(list: readonly string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw usage(`--env expects NAME=VALUE, got "${kv}"`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

/**
 * Options of `run`. With `--`, everything before it is options and the module, everything after it the module's
 * arguments; without `--`, the arguments after the module belong to the module (like `wasmedge run MODULE ARGS`).
 */
export function takeRunOptions(argv: string[]): { opts: RunOptions; json: boolean; help: boolean; positional: string[]; passthrough: string[] } {
  const dash = argv.indexOf('--');
  const head = dash >= 0 ? argv.slice(0, dash) : argv;
  const opts: RunOptions = { env: {} };
  const positional: string[] = [];
  let json = false;
  let help = false;
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
    else if (a === '--gas-limit') opts.gas = intValue(a, head[++i]);
    else if (a === '--json') json = true;
    else if ((a === '--help' || a === '-h') && positional.length === 0) help = true;
    else if (a.startsWith('-') && (dash >= 0 || positional.length === 0)) throw usage(`unknown option ${a} for run; see wasmedge_emit run --help`);
    else {
      positional.push(a);
      if (dash < 0) return { opts, json, help, positional, passthrough: head.slice(i + 1) };
    }
  }
  if (positional.length > 1) throw usage(`run takes one module; put its arguments after "--" (got "${positional[1]}")`);
  return { opts, json, help, positional, passthrough: dash >= 0 ? argv.slice(dash + 1) : [] };
}
