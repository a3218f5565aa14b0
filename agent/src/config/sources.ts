import fs from 'node:fs';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

/** A partial config: what one source (file, environment, flags) says; later sources override earlier ones. */
export type Layer = Record<string, unknown>;

export const DEFAULT_CONFIG_FILE = '/etc/wasmedge-agent/config.json';

/** Reads the JSON config file; a missing default file is fine, a missing explicit one is not. */
export function readConfigFile(file: string, explicit: boolean): Layer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return {};
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `cannot read config file ${file}: ${code ?? (err as Error).message}`, { path: file });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `config file ${file} is not valid JSON: ${(err as Error).message}`, { path: file });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `config file ${file} must hold a JSON object, found ${Array.isArray(value) ? 'an array' : typeof value}`, { path: file });
  }
  return value as Layer;
}

/** Flag and environment values are strings; numbers are parsed here so the schema sees the right type. */
export function intFrom(source: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new AgentError('AGT_ERR_CONFIG_INVALID', `${source} expects a non-negative integer, got "${v}"`, { field: source });
  return n;
}

export function boolFrom(source: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new AgentError('AGT_ERR_CONFIG_INVALID', `${source} expects true or false, got "${v}"`, { field: source });
}

/** "HOST:PORT", ":PORT" or "PORT" (host defaults to 127.0.0.1); "[::1]:PORT" for IPv6. */
export function hostPortFrom(source: string, v: string | undefined): { host?: string; port: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v) ?? (/^\d+$/.test(v) ? [v, undefined, '', v] : null);
  if (!m) throw new AgentError('AGT_ERR_CONFIG_INVALID', `${source} expects HOST:PORT, got "${v}"`, { field: source });
  const host = m[1] ?? m[2];
  const port = intFrom(source, m[3]);
  if (port === undefined || port > 65535) throw new AgentError('AGT_ERR_CONFIG_INVALID', `${source}: port must be 0-65535, got "${m[3]}"`, { field: source });
  return host ? { host, port } : { port };
}

/** Deep merge of plain objects; arrays and scalars from `over` replace. `runner` is replaced whole (a union). */
export function mergeLayers(base: Layer, over: Layer): Layer {
  const out: Layer = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    const plain = (x: unknown): x is Layer => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = k !== 'runner' && plain(b) && plain(v) ? mergeLayers(b, v) : v;
  }
  return out;
}

/** Drops undefined leaves and empty objects, so a layer only says what its source actually set. */
export function prune(layer: Layer): Layer {
  const out: Layer = {};
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const inner = prune(v as Layer);
      if (Object.keys(inner).length > 0) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}
