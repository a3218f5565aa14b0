import { z } from 'zod';
import { appNameSchema, appOptionsSchema, digestSchema } from '../../../runner-proto/src/protocol/index.js';

/**
 * One app of the desired state: "app NAME runs module DIGEST as KIND with these options". What the runner is
 * told in DEPLOY is exactly `{app: name, digest, kind, options}`; the rest is the agent's own bookkeeping.
 */
export const appSpecSchema = z.strictObject({
  name: appNameSchema,
  digest: digestSchema,
  kind: z.enum(['command', 'reactor']),
  options: appOptionsSchema,
  /** Redeploy after the runner restarts. false: a runner restart leaves the app stopped until `start`. */
  autostart: z.boolean(),
  /** Desired: deployed on the runner (true) or stopped (false, the spec is kept for `start`). */
  running: z.boolean(),
  /** The only digest this app accepts; deploys of anything else are refused. */
  pin: digestSchema.optional(),
  /** Store name the module was deployed from, if it was deployed by name (informational). */
  module: z.string().max(128).optional(),
  /** Key id of the trusted key whose signature the module carried, if any. */
  signer: z.string().max(128).optional(),
  /** Bumped on every change; the runner is known to run generation `applied` (see DesiredState). */
  generation: z.number().int().nonnegative(),
  updatedAt: z.string(),
});
export type AppSpec = z.infer<typeof appSpecSchema>;

/** The JSON of the desired state (each copy in state/apps.state; earlier versions' state/apps.json); `version` is bumped when it changes incompatibly. */
export const STATE_FORMAT_VERSION = 1;
export const stateFileSchema = z.strictObject({
  version: z.literal(STATE_FORMAT_VERSION),
  apps: z.array(appSpecSchema),
  /** name -> generation the runner was last seen running; written lazily, so it may lag (never lead). */
  applied: z.record(z.string(), z.number().int().nonnegative()),
});
export type StateFile = z.infer<typeof stateFileSchema>;

/** Fingerprint of what the runner is told for an app: equal fingerprints need no redeploy. */
export function deployFingerprint(s: Pick<AppSpec, 'digest' | 'kind' | 'options'>): string {
  return JSON.stringify([s.digest, s.kind, canonical(s.options)]);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
