import { z } from 'zod';
import { appNameSchema, lazySchema, memo } from '../../../runner-proto/src/protocol/index.js';
import { callBody } from '../apps/index.js';

// Built on first use (runner-proto/src/protocol/lazy.ts): most of these serve requests an agent may never get.

const envName = memo(() => z.string().min(1).max(256).regex(/^[^=\0]+$/, 'must not contain "=" or NUL'));

const limits = memo(() =>
  z
    .strictObject({
      timeMs: z.number().int().nonnegative().optional(),
      memoryPages: z.number().int().nonnegative().max(65536).optional(),
      outputBytes: z.number().int().nonnegative().optional(),
      gas: z.number().int().nonnegative().optional(),
    })
    .optional(),
);
export const limitsBody = lazySchema(limits);

const run = memo(() =>
  z.strictObject({
    args: z.array(z.string().max(65536)).max(4096).optional(),
    env: z.record(envName(), z.string().max(65536)).optional(),
    limits: limits(),
  }),
);
export const runBody = lazySchema(run);
export type RunBody = z.infer<typeof runBody>;

/** The first WebSocket message of a run: what to run, then the same options as the HTTP body. */
export const wsRunStart = lazySchema(memo(() => run().extend({ module: z.string().min(1).max(200) })));
export const wsClientMessage = lazySchema(
  memo(() => z.discriminatedUnion('type', [z.strictObject({ type: z.literal('kill'), graceMs: z.number().int().nonnegative().max(600_000).optional() })])),
);

/** One call on WS /v1/calls: an id chosen by the client (echoed in the answer), then a call body. */
export const wsCall = lazySchema(memo(() => callBody.extend({ id: z.union([z.number().int(), z.string().max(64)]), app: appNameSchema })));

const boolish = memo(() => z.enum(['1', '0', 'true', 'false', 'yes', 'no']).transform((v) => v === '1' || v === 'true' || v === 'yes'));

/** GET /v1/logs and WS /v1/logs query parameters. */
export const logsQuery = lazySchema(
  memo(() =>
    z.strictObject({
      app: z.string().min(1).max(128).optional(),
      run: z.coerce.number().int().nonnegative().optional(),
      source: z.enum(['agent', 'app']).optional(),
      tail: z.coerce.number().int().min(0).max(1_000_000).optional(),
      after: z.coerce.number().int().nonnegative().optional(),
      follow: boolish().optional(),
    }),
  ),
);
export type LogsQuery = z.infer<typeof logsQuery>;

export const uploadQuery = lazySchema(memo(() => z.strictObject({ kind: z.enum(['command', 'reactor']).optional() })));
export const invokeQuery = lazySchema(memo(() => z.strictObject({ format: z.enum(['raw', 'json']).optional() })));
