import { z } from 'zod';

/** Protocol version spoken by this build; HELLO negotiates the highest both sides support. */
export const PROTOCOL_VERSION = 1;

/**
 * Frame types. Requests carry a correlation id chosen by the sender; the answer (RESULT or ERROR) echoes it.
 * Run output and exits carry the run's correlation id.
 */
export const MsgType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  PING: 0x03,
  PONG: 0x04,
  /** Answered by RESULT with the same body, byte for byte (interop tests, RTT benchmarks). */
  ECHO: 0x05,
  MODULE_HAVE: 0x10,
  MODULE_BEGIN: 0x11,
  MODULE_CHUNK: 0x12,
  MODULE_END: 0x13,
  MODULE_FORGET: 0x14,
  RUN: 0x20,
  STDOUT: 0x21,
  STDERR: 0x22,
  EXIT: 0x23,
  KILL: 0x24,
  RESULT: 0x7e,
  ERROR: 0x7f,
} as const;

export type MsgTypeName = keyof typeof MsgType;

const NAMES = new Map<number, MsgTypeName>(Object.entries(MsgType).map(([k, v]) => [v, k as MsgTypeName]));

export function msgTypeName(type: number): string {
  return NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export const CAPABILITIES = ['module-transfer', 'run', 'stream-output', 'kill'] as const;

export const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lowercase hex>');

export const helloSchema = z.object({
  versions: z.array(z.number().int().positive()).min(1).max(16),
  role: z.enum(['agent', 'runner']),
  epoch: z.number().int().nonnegative(),
  capabilities: z.array(z.string().max(64)).max(64),
  maxBody: z.number().int().positive(),
  software: z.string().max(128).optional(),
});
export type Hello = z.infer<typeof helloSchema>;

export const helloAckSchema = z.object({
  version: z.number().int().positive(),
  epoch: z.number().int().nonnegative(),
  capabilities: z.array(z.string().max(64)).max(64),
  engines: z.array(z.string().max(64)).max(16),
  modules: z.number().int().nonnegative(),
  software: z.string().max(128).optional(),
});
export type HelloAck = z.infer<typeof helloAckSchema>;

export const moduleHaveSchema = z.object({ digest: digestSchema });
export const moduleBeginSchema = z.object({
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
});
export type ModuleBegin = z.infer<typeof moduleBeginSchema>;
export const moduleEndSchema = z.object({ digest: digestSchema });

const envNameSchema = z.string().min(1).max(256).regex(/^[^=\0]+$/, 'env names may not contain = or NUL');

export const limitsSchema = z
  .object({
    timeMs: z.number().int().nonnegative().optional(),
    memoryPages: z.number().int().nonnegative().max(65536).optional(),
    outputBytes: z.number().int().nonnegative().optional(),
  })
  .strict();

export const runSchema = z
  .object({
    digest: digestSchema,
    argv0: z.string().max(4096),
    args: z.array(z.string().max(65536)).max(4096),
    env: z.record(envNameSchema, z.string().max(65536)),
    limits: limitsSchema.optional(),
    engine: z.string().max(64).optional(),
  })
  .strict();
export type RunMessage = z.infer<typeof runSchema>;

export const exitSchema = z.object({
  reason: z.enum(['exit', 'trap', 'timeout', 'memory', 'output', 'gas', 'killed', 'load']),
  exitCode: z.number().int(),
  message: z.string().max(65536).optional(),
  stats: z.object({
    wallMs: z.number().nonnegative(),
    peakPages: z.number().int().nonnegative(),
    instructions: z.number().int().nonnegative().optional(),
  }),
});
export type ExitMessage = z.infer<typeof exitSchema>;

export const killSchema = z.object({ graceMs: z.number().int().nonnegative().max(600_000).optional() });

export const errorBodySchema = z.object({
  code: z.string().max(64),
  message: z.string().max(65536),
  details: z.record(z.string(), z.unknown()).optional(),
});
