import { z } from 'zod';

const envName = z.string().min(1).max(256).regex(/^[^=\0]+$/, 'must not contain "=" or NUL');

export const limitsBody = z
  .strictObject({
    timeMs: z.number().int().nonnegative().optional(),
    memoryPages: z.number().int().nonnegative().max(65536).optional(),
    outputBytes: z.number().int().nonnegative().optional(),
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
