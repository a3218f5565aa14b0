import { parseArgs } from 'node:util';
import { z } from 'zod';
import { AgentError } from '../errors/index.js';

const runnerConfigSchema = z
  .object({
    region: z.string().min(1).optional(),
    regionSize: z.number().int().positive().optional(),
    ringSize: z.number().int().positive(),
    socket: z.string().min(1).optional(),
    /** Absent: wasmedge when its CLI is installed, else v8. */
    engine: z.enum(['v8', 'wasmedge']).optional(),
    maxModuleBytes: z.number().int().positive(),
    keepRegion: z.boolean(),
    notify: z.enum(['polling', 'futex', 'socket']),
  })
  .refine((c) => c.region !== undefined || c.socket !== undefined, { message: 'give --region PATH (shared memory) or --socket PATH (stream)' });

export type RunnerConfig = Readonly<z.infer<typeof runnerConfigSchema>>;

export const RUNNER_USAGE = `usage: wasmedge-runner (--region PATH [--ring-size BYTES] [--region-size BYTES] | --socket PATH) [--engine v8|wasmedge]

  --region PATH       shared-memory file to create (e.g. /dev/shm/wasm-bridge); removed on exit unless --keep-region
  --ring-size BYTES   bytes per ring, a power of two (default 1048576)
  --region-size BYTES size of the region file (default: just enough; QEMU ivshmem needs a power of two, e.g. 4194304)
  --socket PATH       listen for the stream transport on a Unix socket instead
  --notify MODE       polling (default; works across a VM boundary) futex (blocking, same kernel only) or socket (doorbell bytes on REGION.bell)
  --engine NAME       default engine: v8 or wasmedge (default: wasmedge when installed, else v8); apps may pick either
  --max-module BYTES  largest module accepted (default 67108864)`;

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new AgentError('AGT_ERR_CONFIG_INVALID', `${flag} expects a positive integer, got "${v}"`, { field: flag });
  return n;
}

/** Parses argv (and WASM_RUNNER_* environment overrides) once into a frozen config. */
export function parseRunnerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      region: { type: 'string' },
      'ring-size': { type: 'string' },
      'region-size': { type: 'string' },
      socket: { type: 'string' },
      engine: { type: 'string' },
      'max-module': { type: 'string' },
      'keep-region': { type: 'boolean' },
      notify: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) throw new AgentError('AGT_ERR_CONFIG_INVALID', RUNNER_USAGE);
  const raw = {
    region: values.region ?? env.WASM_RUNNER_REGION,
    regionSize: num(values['region-size'] ?? env.WASM_RUNNER_REGION_SIZE, '--region-size'),
    ringSize: num(values['ring-size'] ?? env.WASM_RUNNER_RING_SIZE, '--ring-size') ?? 1024 * 1024,
    socket: values.socket ?? env.WASM_RUNNER_SOCKET,
    engine: values.engine ?? env.WASM_RUNNER_ENGINE,
    maxModuleBytes: num(values['max-module'], '--max-module') ?? 64 * 1024 * 1024,
    keepRegion: values['keep-region'] ?? false,
    notify: values.notify ?? env.WASM_RUNNER_NOTIFY ?? 'polling',
  };
  const r = runnerConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `runner config ${issue.path.join('.') || ''}: ${issue.message}`.replace(' : ', ': '), {
      field: issue.path.join('.'),
    });
  }
  return Object.freeze(r.data);
}
