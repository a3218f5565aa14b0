import fs from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { AppOptions } from '../../../runner-proto/src/protocol/index.js';
import type { AppSettings } from './deploy-request.js';

export interface AppDefaults {
  /** Host directories under which preopens may point; empty (the default) forbids preopens. */
  readonly preopenRoots: readonly string[];
  readonly pool: { readonly min: number; readonly max: number; readonly idleMs: number };
}

function bad(field: string, message: string): AgentError {
  return new AgentError('AGT_ERR_BAD_REQUEST', `field ${field}: ${message}`, { field });
}

function within(child: string, root: string): boolean {
  const rel = path.relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * A preopen gives a module a host directory, so it is a privilege: the host path (symlinks resolved) must lie
 * under one of the configured roots. Deny by default: with no roots, no preopens.
 */
function checkPreopen(p: NonNullable<AppSettings['preopens']>[number], i: number, roots: readonly string[]): { guest: string; host: string; readonly: boolean } {
  if (roots.length === 0) throw bad(`preopens.${i}.host`, 'preopens are disabled on this agent (apps.preopenRoots is empty)');
  let real: string;
  try {
    real = fs.realpathSync(p.host);
  } catch (err) {
    throw bad(`preopens.${i}.host`, `${p.host} does not exist or cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (!fs.statSync(real).isDirectory()) throw bad(`preopens.${i}.host`, `${p.host} is not a directory`);
  if (!roots.some((r) => within(real, r))) throw bad(`preopens.${i}.host`, `${p.host} (${real}) is outside the allowed roots ${roots.join(', ')}`);
  return { guest: p.guest, host: real, readonly: p.readonly };
}

/** The options the runner is told: this deploy's settings over the app's previous ones, over the defaults. */
export function buildOptions(s: AppSettings, prev: AppOptions | undefined, kind: 'command' | 'reactor', d: AppDefaults): AppOptions {
  const preopens = s.preopens ? s.preopens.map((p, i) => checkPreopen(p, i, d.preopenRoots)) : (prev?.preopens ?? []);
  const min = s.pool?.min ?? prev?.pool.min ?? (kind === 'reactor' ? d.pool.min : 0);
  const max = s.pool?.max ?? prev?.pool.max ?? Math.max(d.pool.max, min);
  if (min > max) throw bad('pool.min', `${min} is above pool.max ${max}`);
  const options: AppOptions = {
    args: s.args ?? prev?.args ?? [],
    env: s.env ?? prev?.env ?? {},
    preopens,
    limits: s.limits ?? prev?.limits ?? {},
    pool: { min, max, idleMs: s.pool?.idleMs ?? prev?.pool.idleMs ?? d.pool.idleMs },
  };
  const engine = s.engine ?? prev?.engine;
  return engine === undefined ? options : { ...options, engine };
}
