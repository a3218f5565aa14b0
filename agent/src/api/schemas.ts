import { z } from 'zod';
import { appNameSchema } from '../../../runner-proto/src/protocol/index.js';
import { callBody } from '../apps/index.js';

const envName = z.string().min(1).max(256).regex(/^[^=\0]+$/, 'must not contain "=" or NUL');

export const limitsBody = z
  .strictObject({
    timeMs: z.number().int().nonnegative().optional(),
    memoryPages: z.number().int().nonnegative().max(65536).optional(),
    outputBytes: z.number().int().nonnegative().optional(),
    gas: z.number().int().nonnegative().optional(),
  })
  .optional();

export const runBody = z.strictObject({
  args: z.array(z.string().max(65536)).max(4096).optional(),
  env: z.record(envName, z.string().max(65536)).optional(),
  limits: limitsBody,
});
export type RunBody = z.infer<typeof runBody>;

/** The first WebSocket message of a run: what to run, then the same options as the HTTP body. */
export const wsRunStart = runBody.extend({ module: z.string().min(1).max(200) });
export const wsClientMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('kill'), graceMs: z.number().int().nonnegative().max(600_000).optional() }),
]);

/** One call on WS /v1/calls: an id chosen by the client (echoed in the answer), then a call body. */
export const wsCall = callBody.extend({ id: z.union([z.number().int(), z.string().max(64)]), app: appNameSchema });

const boolish = z.enum(['1', '0', 'true', 'false', 'yes', 'no']).transform((v) => v === '1' || v === 'true' || v === 'yes');

/** GET /v1/logs and WS /v1/logs query parameters. */
export const logsQuery = z.strictObject({
  app: z.string().min(1).max(128).optional(),
  run: z.coerce.number().int().nonnegative().optional(),
  source: z.enum(['agent', 'app']).optional(),
  tail: z.coerce.number().int().min(0).max(1_000_000).optional(),
  after: z.coerce.number().int().nonnegative().optional(),
  follow: boolish.optional(),
});
export type LogsQuery = z.infer<typeof logsQuery>;

export const uploadQuery = z.strictObject({ kind: z.enum(['command', 'reactor']).optional() });
export const invokeQuery = z.strictObject({ format: z.enum(['raw', 'json']).optional() });
