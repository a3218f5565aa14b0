import { z } from 'zod';
import { checkPolicySchema } from '../check/index.js';

/**
 * The agent's configuration file (JSON; /etc/wasmedge-agent/config.json or --config). Every key is optional
 * except the runner channel, which may also come from flags or the environment; unknown keys are errors, and
 * keys that were renamed are answered with their new name (renamed.ts). docs/operations.md lists every key.
 */

const octalMode = z.union([
  z.number().int().min(0).max(0o777),
  z
    .string()
    .regex(/^0?[0-7]{3}$/, 'expected an octal mode such as "0660"')
    .transform((s) => parseInt(s, 8)),
]);

export const runnerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('ring'),
    /** The shared-memory region the runner created: /dev/shm/... on a host, the ivshmem BAR2 resource in a VM. */
    path: z.string().min(1),
    /** polling works across a VM boundary; futex needs both sides on one kernel; socket rings REGION.bell. */
    notify: z.enum(['polling', 'futex', 'socket']).default('polling'),
  }),
  z.strictObject({ kind: z.literal('stream'), path: z.string().min(1) }),
  z.strictObject({ kind: z.literal('serial'), path: z.string().min(1) }),
]);

export const tcpSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port (the chosen one is logged). */
  port: z.number().int().min(0).max(65535),
  /** File holding the bearer token (one line, at least 16 characters); must not be readable by others. */
  tokenFile: z.string().min(1).optional(),
  /** The token itself; prefer tokenFile or $WASMEDGE_AGENT_TOKEN so it stays out of config backups. */
  token: z.string().min(16, 'a bearer token needs at least 16 characters').optional(),
});

export const apiSchema = z.strictObject({
  socket: z.string().min(1),
  socketMode: octalMode.default(0o660),
  /** Group that owns the socket (name or numeric gid): members may use the API. */
  socketGroup: z.union([z.string().min(1), z.number().int().nonnegative()]).optional(),
  tcp: tcpSchema.optional(),
  /** Largest JSON request body. */
  maxJsonBytes: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024),
  /** Largest stdin of one invoke (it travels in one channel frame, so the transport also bounds it). */
  maxInvokeBytes: z.number().int().positive().default(192 * 1024),
  /** Module uploads held in memory at once; more wait their turn. */
  maxConcurrentUploads: z.number().int().positive().max(64).default(4),
  /** Whole-request bound (uploads of large modules over slow links need minutes). */
  requestTimeoutMs: z.number().int().positive().default(10 * 60_000),
  /** Time allowed to send the request headers (slow-header clients are cut off). */
  headersTimeoutMs: z.number().int().positive().default(30_000),
  maxConnections: z.number().int().positive().default(1024),
});

export const trustSchema = z.strictObject({
  /** Directory of ed25519 public keys (*.pem SPKI, or *.pub: 32 raw bytes, base64 or hex). SIGHUP reloads it. */
  keysDir: z.string().min(1).optional(),
  /** Refuse modules without a valid detached signature by a key in keysDir. */
  requireSignature: z.boolean().default(false),
});

export const inboxSchema = z.strictObject({
  dir: z.string().min(1),
  /** A file is read only after its size and mtime stayed unchanged this long (writers that copy in place). */
  settleMs: z.number().int().min(50).max(60_000).default(500),
});

export const appsSchema = z.strictObject({
  /** Host directories under which app preopens may point (symlinks resolved); empty forbids preopens. */
  preopenRoots: z.array(z.string().regex(/^\//, 'must be an absolute path')).default([]),
  /** Pool defaults for reactor apps that do not say. */
  pool: z
    .strictObject({
      min: z.number().int().nonnegative().max(1024).default(1),
      max: z.number().int().positive().max(1024).default(4),
      idleMs: z.number().int().positive().default(60_000),
    })
    .default({ min: 1, max: 4, idleMs: 60_000 }),
});

export const logsSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Recent lines (agent events and program output) kept for `logs`; older ones are dropped. */
  ringLines: z.number().int().min(100).max(1_000_000).default(5000),
  ringBytes: z.number().int().min(64 * 1024).max(256 * 1024 * 1024).default(2 * 1024 * 1024),
});

export const reconcileSchema = z.strictObject({
  /** Besides every (re)connection, the runner is compared with the desired state this often. */
  intervalMs: z.number().int().min(1000).default(30_000),
});

export const metricsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** prom-client's process metrics (CPU, RSS, event-loop lag, GC). */
  processMetrics: z.boolean().default(true),
});

/**
 * A section's defaults are its schema applied to {}, once per process: without zod's eval-compiled fast path,
 * which would be generated and compiled for each section only to run once (about 0.2 s of the agent's start
 * under QEMU's TCG; see loadAgentConfig).
 */
const ONCE = { jitless: true } as const;

export const configFileSchema = z.strictObject({
  /** Module store (blobs/, names/) and desired state (state/apps.state) live here. */
  stateDir: z.string().min(1).default('/var/lib/wasmedge-agent'),
  runner: runnerSchema,
  api: apiSchema,
  policy: checkPolicySchema.default(() => checkPolicySchema.parse({}, ONCE)),
  trust: trustSchema.default(() => trustSchema.parse({}, ONCE)),
  inbox: inboxSchema.optional(),
  apps: appsSchema.default(() => appsSchema.parse({}, ONCE)),
  logs: logsSchema.default(() => logsSchema.parse({}, ONCE)),
  reconcile: reconcileSchema.default(() => reconcileSchema.parse({}, ONCE)),
  metrics: metricsSchema.default(() => metricsSchema.parse({}, ONCE)),
});

export type AgentConfigData = z.infer<typeof configFileSchema>;
