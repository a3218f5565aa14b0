import { z } from 'zod';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { isDigest } from './digest.js';
import { isValidName } from './name.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Caller-owned facts about a module (its kind, the checker's verdict); the store only keeps them. */
export type ModuleMeta = { readonly [key: string]: JsonValue };

/** What the store knows about a blob on its own, with no name attached. */
export interface BlobInfo {
  readonly digest: string;
  readonly size: number;
}

/** The content of `names/<name>.json`. Timestamps are ISO 8601 UTC. */
export interface NameRecord extends BlobInfo {
  readonly name: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly meta?: ModuleMeta;
}

/** Meta travels with every list() and resolve(), so it is kept small. */
export const META_MAX_BYTES = 4096;

const MetaSchema = z.record(z.string(), z.json());

const RecordSchema = z.object({
  name: z.string().refine(isValidName, 'not a valid module name'),
  digest: z.string().refine(isDigest, 'not a sha256:<64 hex> digest'),
  size: z.number().int().nonnegative(),
  createdAt: z.string().min(1),
  updatedAt: z.string().min(1),
  meta: MetaSchema.optional(),
});

/** Parses a record read from disk; returns a reason instead of throwing so callers choose the error. */
export function parseRecord(text: string, expectedName: string): NameRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  const parsed = RecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
  }
  if (parsed.data.name !== expectedName) {
    return `holds name ${JSON.stringify(parsed.data.name)}; expected ${JSON.stringify(expectedName)} to match the file name`;
  }
  return freezeRecord(parsed.data as NameRecord);
}

/**
 * Returns a detached deep copy so that a caller mutating its object after setName() cannot change what
 * the store wrote or returns.
 */
export function checkMeta(meta: unknown): ModuleMeta {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    const got = meta === null ? 'null' : Array.isArray(meta) ? 'an array' : typeof meta;
    throw new AgentError('AGT_ERR_BAD_REQUEST', `meta must be a JSON object, received ${got}`, { field: 'meta' });
  }
  const parsed = MetaSchema.safeParse(meta);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `meta.${issue.path.join('.')}` : 'meta';
    throw new AgentError('AGT_ERR_BAD_REQUEST', `${where} is not JSON-serializable: ${issue?.message ?? 'invalid'}`, {
      field: where,
    });
  }
  const text = JSON.stringify(parsed.data);
  const bytes = Buffer.byteLength(text);
  if (bytes > META_MAX_BYTES) {
    throw new AgentError('AGT_ERR_TOO_LARGE', `meta is ${bytes} bytes as JSON; expected at most ${META_MAX_BYTES}`, {
      field: 'meta',
    });
  }
  return JSON.parse(text) as ModuleMeta;
}

export function freezeRecord(record: NameRecord): NameRecord {
  if (record.meta !== undefined) deepFreeze(record.meta);
  return Object.freeze(record);
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  for (const child of Object.values(value)) deepFreeze(child);
  Object.freeze(value);
}
