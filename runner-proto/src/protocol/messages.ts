import { z } from 'zod';
import { lazySchema, memo } from './lazy.js';

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
  DEPLOY: 0x30,
  UNDEPLOY: 0x31,
  CALL: 0x32,
  INVOKE: 0x33,
  APPS: 0x34,
  CALL_BATCH: 0x35,
  /** CALL_BATCH in a binary body (call-batch-bin.ts), answered by a binary RESULT; only to runners that offer it. */
  CALL_BATCH_BIN: 0x36,
  RESULT: 0x7e,
  ERROR: 0x7f,
} as const;

export type MsgTypeName = keyof typeof MsgType;

const NAMES = new Map<number, MsgTypeName>(Object.entries(MsgType).map(([k, v]) => [v, k as MsgTypeName]));

export function msgTypeName(type: number): string {
  return NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export const CAPABILITIES = ['module-transfer', 'run', 'stream-output', 'kill', 'apps', 'call', 'call-batch', 'call-batch-bin', 'invoke', 'module-pipeline'] as const;

// Every schema is built on its first use (lazy.ts): each is a memoised factory, composed from the others' real
// instances, and exported under its name as a stand-in that builds it when first touched.
const digest = memo(() => z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lowercase hex>'));
export const digestSchema = lazySchema(digest);

const hello = memo(() => z.object({
  versions: z.array(z.number().int().positive()).min(1).max(16),
  role: z.enum(['agent', 'runner']),
  epoch: z.number().int().nonnegative(),
  capabilities: z.array(z.string().max(64)).max(64),
  maxBody: z.number().int().positive(),
  software: z.string().max(128).optional(),
}));
export const helloSchema = lazySchema(hello);
export type Hello = z.infer<typeof helloSchema>;

const helloAck = memo(() => z.object({
  version: z.number().int().positive(),
  epoch: z.number().int().nonnegative(),
  capabilities: z.array(z.string().max(64)).max(64),
  engines: z.array(z.string().max(64)).max(16),
  modules: z.number().int().nonnegative(),
  software: z.string().max(128).optional(),
}));
export const helloAckSchema = lazySchema(helloAck);
export type HelloAck = z.infer<typeof helloAckSchema>;

const moduleHave = memo(() => z.object({ digest: digest() }));
export const moduleHaveSchema = lazySchema(moduleHave);
const moduleBegin = memo(() => z.object({
  digest: digest(),
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  /**
   * false (capability `module-pipeline`): no RESULT for the BEGIN, only an ERROR if it is refused, so chunks and
   * MODULE_END can follow without waiting; that ERROR (same id) then answers the MODULE_END.
   */
  ack: z.boolean().optional(),
}));
export const moduleBeginSchema = lazySchema(moduleBegin);
export type ModuleBegin = z.infer<typeof moduleBeginSchema>;
const moduleEnd = memo(() => z.object({ digest: digest() }));
export const moduleEndSchema = lazySchema(moduleEnd);

const envName = memo(() => z.string().min(1).max(256).regex(/^[^=\0]+$/, 'env names may not contain = or NUL'));

/** A directory the module sees (`guest`) backed by a host directory; read-only unless said. */
const preopen = memo(() => z.strictObject({
  guest: z.string().min(1).max(4096),
  host: z.string().min(1).max(4096),
  readonly: z.boolean(),
}));
export const preopenSchema = lazySchema(preopen);

const limits = memo(() => z
  .object({
    timeMs: z.number().int().nonnegative().optional(),
    memoryPages: z.number().int().nonnegative().max(65536).optional(),
    outputBytes: z.number().int().nonnegative().optional(),
    gas: z.number().int().nonnegative().optional(),
  })
  .strict());
export const limitsSchema = lazySchema(limits);

const run = memo(() => z
  .object({
    digest: digest(),
    argv0: z.string().max(4096),
    args: z.array(z.string().max(65536)).max(4096),
    env: z.record(envName(), z.string().max(65536)),
    limits: limits().optional(),
    preopens: z.array(preopen()).max(64).optional(),
    engine: z.string().max(64).optional(),
  })
  .strict());
export const runSchema = lazySchema(run);
export type RunMessage = z.infer<typeof runSchema>;

const exit = memo(() => z.object({
  reason: z.enum(['exit', 'trap', 'timeout', 'memory', 'output', 'gas', 'killed', 'load']),
  exitCode: z.number().int(),
  message: z.string().max(65536).optional(),
  stats: z.object({
    wallMs: z.number().nonnegative(),
    peakPages: z.number().int().nonnegative(),
    instructions: z.number().int().nonnegative().optional(),
    start: z.enum(['cold', 'warm']).optional(),
    startMs: z.number().nonnegative().optional(),
  }),
}));
export const exitSchema = lazySchema(exit);
export type ExitMessage = z.infer<typeof exitSchema>;

const kill = memo(() => z.object({ graceMs: z.number().int().nonnegative().max(600_000).optional() }));
export const killSchema = lazySchema(kill);

const errorBody = memo(() => z.object({
  code: z.string().max(64),
  message: z.string().max(65536),
  details: z.record(z.string(), z.unknown()).optional(),
}));
export const errorBodySchema = lazySchema(errorBody);

const appName = memo(() => z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'app names are 1-128 of [A-Za-z0-9._-], starting with a letter or digit'));
export const appNameSchema = lazySchema(appName);

const pool = memo(() => z.strictObject({
  /** Instances kept warm even when idle (0 allows scale to zero). */
  min: z.number().int().nonnegative().max(1024),
  /** Upper bound on instances serving this app at once. */
  max: z.number().int().positive().max(1024),
  /** An idle app drops to `min` instances after this long. */
  idleMs: z.number().int().positive().max(86_400_000),
}));
export const poolSchema = lazySchema(pool);
export type PoolConfig = z.infer<typeof poolSchema>;

const appOptions = memo(() => z.strictObject({
  args: z.array(z.string().max(65536)).max(4096),
  env: z.record(envName(), z.string().max(65536)),
  preopens: z.array(preopen()).max(64),
  limits: limits(),
  engine: z.string().max(64).optional(),
  pool: pool(),
}));
export const appOptionsSchema = lazySchema(appOptions);
export type AppOptions = z.infer<typeof appOptionsSchema>;

const deploy = memo(() => z.strictObject({
  app: appName(),
  digest: digest(),
  kind: z.enum(['command', 'reactor']),
  options: appOptions(),
}));
export const deploySchema = lazySchema(deploy);
export type DeployMessage = z.infer<typeof deploySchema>;

const deployResult = memo(() => z.object({
  app: z.string(),
  digest: digest(),
  previous: digest().nullable(),
  warmed: z.number().int().nonnegative(),
  ms: z.number().nonnegative(),
}));
export const deployResultSchema = lazySchema(deployResult);
export type DeployResult = z.infer<typeof deployResultSchema>;

const undeploy = memo(() => z.strictObject({ app: appName() }));
export const undeploySchema = lazySchema(undeploy);

const wasmValue = memo(() => z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('i32'), value: z.number().int().min(-2147483648).max(4294967295) }),
  z.strictObject({ type: z.literal('i64'), value: z.string().regex(/^-?[0-9]{1,20}$/, 'i64 values travel as decimal strings') }),
  z.strictObject({ type: z.literal('f32'), value: z.number() }),
  z.strictObject({ type: z.literal('f64'), value: z.number() }),
]));
export const wasmValueSchema = lazySchema(wasmValue);

const call = memo(() => z.strictObject({
  app: appName(),
  fn: z.string().min(1).max(1024),
  args: z.array(wasmValue()).max(1000),
  limits: z.strictObject({ timeMs: z.number().int().nonnegative().optional(), gas: z.number().int().nonnegative().optional() }).optional(),
}));
export const callSchema = lazySchema(call);
export type CallMessage = z.infer<typeof callSchema>;

const stats = memo(() => exit().shape.stats.extend({
  start: z.enum(['cold', 'warm']).optional(),
  startMs: z.number().nonnegative().optional(),
}));

const callResult = memo(() => z.union([
  z.object({ ok: z.literal(true), results: z.array(wasmValue()), stats: stats() }),
  z.object({ ok: z.literal(false), reason: exit().shape.reason, exitCode: z.number().int(), message: z.string().optional(), stats: stats() }),
]));
export const callResultSchema = lazySchema(callResult);

export type CallResultMessage = z.infer<typeof callResultSchema>;

/** Many calls in one frame (the agent coalesces calls issued together); answers come back in the same order. */
const callBatch = memo(() => z.strictObject({ calls: z.array(call()).min(1).max(1024) }));
export const callBatchSchema = lazySchema(callBatch);
const callBatchResult = memo(() => z.object({ results: z.array(callResult()) }));
export const callBatchResultSchema = lazySchema(callBatchResult);

/** INVOKE: a JSON head, then raw bytes (stdin in the request, stdout in the answer). See splitHead/joinHead. */
const invokeHead = memo(() => z.strictObject({ app: appName(), limits: limits().optional() }));
export const invokeHeadSchema = lazySchema(invokeHead);
const invokeResultHead = memo(() => z.object({
  reason: exit().shape.reason,
  exitCode: z.number().int(),
  message: z.string().optional(),
  stderr: z.string().max(65536).optional(),
  stats: stats(),
}));
export const invokeResultHeadSchema = lazySchema(invokeResultHead);

const appsResult = memo(() => z.object({
  apps: z.array(
    z.object({
      app: z.string(),
      digest: digest(),
      kind: z.enum(['command', 'reactor']),
      draining: z.number().int().nonnegative(),
      instances: z.number().int().nonnegative(),
      idle: z.number().int().nonnegative(),
      calls: z.number().int().nonnegative(),
      coldStarts: z.number().int().nonnegative(),
      warmStarts: z.number().int().nonnegative(),
    }),
  ),
}));
export const appsResultSchema = lazySchema(appsResult);
