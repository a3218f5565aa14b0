import { z } from 'zod';
import { digestSchema, lazySchema, limitsSchema, memo, wasmValueSchema } from '../../../runner-proto/src/protocol/index.js';

// Built on first use (runner-proto/src/protocol/lazy.ts): an agent that only runs commands never needs them.

const envName = memo(() => z.string().min(1).max(256).regex(/^[^=\0]+$/, 'must not contain "=" or NUL'));

const preopen = memo(() =>
  z.strictObject({
    /** Path the module sees, e.g. /data. */
    guest: z.string().min(1).max(4096).regex(/^\//, 'must be an absolute path'),
    /** Host directory; must lie under one of the agent's apps.preopenRoots. */
    host: z.string().min(1).max(4096).regex(/^\//, 'must be an absolute path'),
    readonly: z.boolean().default(true),
  }),
);
export const preopenBody = lazySchema(preopen);

const pool = memo(() =>
  z.strictObject({
    min: z.number().int().nonnegative().max(1024).optional(),
    max: z.number().int().positive().max(1024).optional(),
    idleMs: z.number().int().positive().max(86_400_000).optional(),
  }),
);
export const poolBody = lazySchema(pool);

/**
 * What a deploy says about an app. Absent fields keep the app's current value (a redeploy of a new module
 * version keeps its options), or take the defaults for a new app. JSON body of PUT /v1/apps/NAME, the
 * `x-app-spec` header when the body is the module itself, and the inbox sidecar NAME.json.
 */
const appSettings = memo(() =>
  z.strictObject({
    kind: z.enum(['command', 'reactor']).optional(),
    args: z.array(z.string().max(65536)).max(4096).optional(),
    env: z.record(envName(), z.string().max(65536)).optional(),
    preopens: z.array(preopen()).max(64).optional(),
    limits: limitsSchema.optional(),
    engine: z.string().min(1).max(64).optional(),
    pool: pool().optional(),
    autostart: z.boolean().optional(),
    /** Accept only this digest from now on; null removes a pin. */
    pin: digestSchema.nullable().optional(),
    /** Refuse the deploy unless the module hashes to this. */
    expectedDigest: digestSchema.optional(),
    /** Redeploy even when nothing changed (fresh instances). */
    restart: z.boolean().optional(),
  }),
);
export const appSettingsSchema = lazySchema(appSettings);
export type AppSettings = z.infer<typeof appSettingsSchema>;

/** PUT /v1/apps/NAME with a JSON body: settings plus the stored module to run (a name or a digest). */
export const deployBody = lazySchema(
  memo(() =>
    appSettings().extend({
      module: z.string().min(1).max(200),
    }),
  ),
);
export type DeployBody = z.infer<typeof deployBody>;

/** Arguments of a call: typed values, or plain numbers / decimal strings typed from the export's signature. */
const callArgument = memo(() => z.union([wasmValueSchema, z.number(), z.string().regex(/^-?[0-9]{1,20}$/, 'expected a number or a decimal string (i64)')]));
export const callArg = lazySchema(callArgument);

export const callBody = lazySchema(
  memo(() =>
    z.strictObject({
      fn: z.string().min(1).max(1024),
      args: z.array(callArgument()).max(1000).default([]),
      limits: z.strictObject({ timeMs: z.number().int().nonnegative().optional(), gas: z.number().int().nonnegative().optional() }).optional(),
    }),
  ),
);
export type CallBody = z.infer<typeof callBody>;
