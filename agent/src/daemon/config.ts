import { parseArgs } from 'node:util';
import { z } from 'zod';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { checkPolicySchema } from '../check/index.js';
import { defaultSocketPath } from '../client/index.js';


const agentConfigSchema = z
  .strictObject({
    socket: z.string().min(1),
    socketMode: z.number().int().min(0).max(0o777),
    store: z.string().min(1),
    runner: z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('ring'), path: z.string().min(1), notify: z.enum(['polling', 'futex', 'socket']) }),
      z.strictObject({ kind: z.literal('stream'), path: z.string().min(1) }),
      z.strictObject({ kind: z.literal('serial'), path: z.string().min(1) }),
    ]),
    policy: checkPolicySchema,
  });

export type AgentConfig = Readonly<z.infer<typeof agentConfigSchema>>;

export const AGENT_USAGE = `usage: wasmedge-agent [--socket PATH] [--store DIR] (--region PATH | --runner-socket PATH | --runner-serial PATH)

  --socket PATH         API socket (default $WASMEDGE_AGENT_SOCKET or /run/wasmedge-agent.sock)
  --store DIR           module store (default $WASMEDGE_AGENT_STORE or /var/lib/wasmedge-agent)
  --region PATH         shared-memory region the runner created (/dev/shm/... or a PCI resource2)
  --runner-socket PATH  use the stream transport over this Unix socket instead
  --runner-serial PATH  use the stream transport over this serial character device (a virtio-serial port)
  --notify MODE         ring wake-ups: polling (default, works across a VM boundary) futex (same kernel) or socket (doorbell bytes on REGION.bell)
  --max-module BYTES    largest module accepted (default 67108864)`;

/** Parses argv and WASMEDGE_AGENT_* overrides once into a frozen config. */
export function parseAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      socket: { type: 'string' },
      store: { type: 'string' },
      region: { type: 'string' },
      'runner-socket': { type: 'string' },
      'runner-serial': { type: 'string' },
      'max-module': { type: 'string' },
      notify: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) throw new AgentError('AGT_ERR_CONFIG_INVALID', AGENT_USAGE);
  const region = values.region ?? env.WASMEDGE_AGENT_REGION;
  const stream = values['runner-socket'] ?? env.WASMEDGE_AGENT_RUNNER_SOCKET;
  const serial = values['runner-serial'] ?? env.WASMEDGE_AGENT_RUNNER_SERIAL;
  if ([region, stream, serial].filter(Boolean).length > 1) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', 'give one of --region (shared memory), --runner-socket (stream) or --runner-serial (serial port)', { field: 'runner' });
  }
  if (!region && !stream && !serial) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `no runner channel: give --region PATH, --runner-socket PATH or --runner-serial PATH\n${AGENT_USAGE}`, { field: 'runner' });
  }
  const maxModule = values['max-module'] ?? env.WASMEDGE_AGENT_MAX_MODULE;
  const raw = {
    socket: values.socket ?? defaultSocketPath(env),
    socketMode: 0o660,
    store: values.store ?? env.WASMEDGE_AGENT_STORE ?? '/var/lib/wasmedge-agent',
    runner: region ? { kind: 'ring', path: region, notify: values.notify ?? env.WASMEDGE_AGENT_NOTIFY ?? 'polling' } : serial ? { kind: 'serial', path: serial } : { kind: 'stream', path: stream },
    policy: maxModule !== undefined ? { maxModuleBytes: Number(maxModule) } : {},
  };
  const r = agentConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.');
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `agent config ${field}: ${issue.message}`, { field });
  }
  return Object.freeze(r.data);
}
