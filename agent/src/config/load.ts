import { parseArgs } from 'node:util';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { defaultSocketPath } from '../client/index.js';
import { refuseRenamedKeys } from './renamed.js';
import { configFileSchema, type AgentConfigData } from './schema.js';
import { DEFAULT_CONFIG_FILE, boolFrom, hostPortFrom, intFrom, mergeLayers, prune, readConfigFile, type Layer } from './sources.js';
import { validate } from './validate.js';

/** The agent's configuration: parsed once, validated, resolved (token read), then deeply frozen. */
export type AgentConfig = Readonly<AgentConfigData & { readonly api: AgentConfigData['api'] & { readonly token?: string }; readonly source: readonly string[] }>;

export const AGENT_USAGE = `usage: wasmedge-agent [--config FILE] [OPTIONS]

  Settings come from the config file (JSON, default ${DEFAULT_CONFIG_FILE} when present), then
  WASMEDGE_AGENT_* environment variables, then these options; docs/operations.md lists every key.

  --config FILE         config file (env WASMEDGE_AGENT_CONFIG)
  --state-dir DIR       module store and desired state (env WASMEDGE_AGENT_STATE_DIR; default /var/lib/wasmedge-agent)
  --store DIR           the same as --state-dir (env WASMEDGE_AGENT_STORE)
  --socket PATH         API socket (env WASMEDGE_AGENT_SOCKET, default /run/wasmedge-agent.sock)
  --region PATH         shared-memory region the runner created (/dev/shm/... or a PCI resource2)
  --runner-socket PATH  use the stream transport over this Unix socket instead
  --runner-serial PATH  use the stream transport over this serial character device (a virtio-serial port)
  --notify MODE         ring wake-ups: polling (default, works across a VM boundary) futex (same kernel) or socket (doorbell bytes on REGION.bell)
  --max-module BYTES    largest module accepted (default 67108864)
  --inbox DIR           watch DIR for .wasm files to check and hot-deploy (env WASMEDGE_AGENT_INBOX)
  --tcp HOST:PORT       also serve the API on TCP, bearer token required (env WASMEDGE_AGENT_TCP)
  --token-file FILE     the TCP bearer token (env WASMEDGE_AGENT_TOKEN_FILE; or WASMEDGE_AGENT_TOKEN)
  --trust-keys DIR      ed25519 public keys that may sign modules (env WASMEDGE_AGENT_TRUST_KEYS)
  --require-signature   refuse modules without a valid signature (env WASMEDGE_AGENT_REQUIRE_SIGNATURE)
  --log-level LEVEL     fatal|error|warn|info|debug|trace|silent (env LOG_LEVEL)
  --check-config        print the resolved config as JSON and exit (0 if valid)`;

const FLAGS = {
  config: { type: 'string' },
  'state-dir': { type: 'string' },
  store: { type: 'string' },
  socket: { type: 'string' },
  region: { type: 'string' },
  'runner-socket': { type: 'string' },
  'runner-serial': { type: 'string' },
  notify: { type: 'string' },
  'max-module': { type: 'string' },
  inbox: { type: 'string' },
  tcp: { type: 'string' },
  'token-file': { type: 'string' },
  'trust-keys': { type: 'string' },
  'require-signature': { type: 'boolean' },
  'log-level': { type: 'string' },
  'check-config': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function runnerLayer(region: string | undefined, stream: string | undefined, serial: string | undefined, notify: string | undefined, where: string): Layer | undefined {
  if ([region, stream, serial].filter(Boolean).length > 1) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `${where}: give one of --region (shared memory), --runner-socket (stream) or --runner-serial (serial port)`, { field: 'runner' });
  }
  if (region) return { kind: 'ring', path: region, ...(notify ? { notify } : {}) };
  if (serial) return { kind: 'serial', path: serial };
  if (stream) return { kind: 'stream', path: stream };
  return undefined;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

export interface LoadedConfig {
  readonly config: AgentConfig;
  /** --check-config was given: print and exit. */
  readonly checkOnly: boolean;
}

/** Parses argv, the environment and the config file once into a frozen, validated config. */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options: FLAGS, strict: true }).values;
  } catch (err) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `${(err as Error).message}\n${AGENT_USAGE}`);
  }
  if (values.help) throw new AgentError('AGT_ERR_CONFIG_INVALID', AGENT_USAGE, { rule: 'help' });
  const str = (k: string): string | undefined => values[k] as string | undefined;

  const explicitFile = str('config') ?? env.WASMEDGE_AGENT_CONFIG;
  const file = explicitFile ?? DEFAULT_CONFIG_FILE;
  const fileLayer = readConfigFile(file, explicitFile !== undefined);
  refuseRenamedKeys(fileLayer, `config file ${file}`);

  const envTcp = hostPortFrom('WASMEDGE_AGENT_TCP', env.WASMEDGE_AGENT_TCP);
  const envLayer = prune({
    stateDir: env.WASMEDGE_AGENT_STATE_DIR ?? env.WASMEDGE_AGENT_STORE,
    runner: runnerLayer(env.WASMEDGE_AGENT_REGION, env.WASMEDGE_AGENT_RUNNER_SOCKET, env.WASMEDGE_AGENT_RUNNER_SERIAL, env.WASMEDGE_AGENT_NOTIFY, 'environment'),
    api: {
      socket: env.WASMEDGE_AGENT_SOCKET,
      tcp: envTcp || env.WASMEDGE_AGENT_TOKEN_FILE || env.WASMEDGE_AGENT_TOKEN ? { ...envTcp, tokenFile: env.WASMEDGE_AGENT_TOKEN_FILE, token: env.WASMEDGE_AGENT_TOKEN } : undefined,
    },
    policy: { maxModuleBytes: intFrom('WASMEDGE_AGENT_MAX_MODULE', env.WASMEDGE_AGENT_MAX_MODULE) },
    trust: { keysDir: env.WASMEDGE_AGENT_TRUST_KEYS, requireSignature: boolFrom('WASMEDGE_AGENT_REQUIRE_SIGNATURE', env.WASMEDGE_AGENT_REQUIRE_SIGNATURE) },
    inbox: env.WASMEDGE_AGENT_INBOX ? { dir: env.WASMEDGE_AGENT_INBOX } : undefined,
    logs: { level: env.LOG_LEVEL },
  });
  if (str('state-dir') && str('store') && str('state-dir') !== str('store')) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', '--store is the same setting as --state-dir; give one', { field: 'stateDir' });
  }
  // A --notify given alone adjusts whichever ring the file or environment named.
  let flagRunner = runnerLayer(str('region'), str('runner-socket'), str('runner-serial'), str('notify'), 'options');
  const notify = str('notify');
  if (!flagRunner && notify) flagRunner = { ...(mergeLayers(fileLayer, envLayer).runner as Layer | undefined), notify };
  const flagTcp = hostPortFrom('--tcp', str('tcp'));
  const flagLayer = prune({
    stateDir: str('state-dir') ?? str('store'),
    runner: flagRunner,
    api: { socket: str('socket'), tcp: flagTcp || str('token-file') ? { ...flagTcp, tokenFile: str('token-file') } : undefined },
    policy: { maxModuleBytes: intFrom('--max-module', str('max-module')) },
    trust: { keysDir: str('trust-keys'), requireSignature: values['require-signature'] as boolean | undefined },
    inbox: str('inbox') ? { dir: str('inbox') } : undefined,
    logs: { level: str('log-level') },
  });

  const merged = mergeLayers(mergeLayers(fileLayer, envLayer), flagLayer);
  const withDefaults = mergeLayers({ api: { socket: defaultSocketPath(env) } }, merged);
  if (withDefaults.runner === undefined) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `no runner channel: give --region PATH, --runner-socket PATH or --runner-serial PATH (or "runner" in the config file)\n${AGENT_USAGE}`, { field: 'runner' });
  }
  // Parsed once per process: zod's eval-compiled fast path would be generated, compiled and run once, which costs
  // more than the plain path (a few hundred ms under QEMU's TCG).
  const r = configFileSchema.safeParse(withDefaults, { jitless: true });
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    const known = issue.code === 'unrecognized_keys' ? ` (unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')})` : '';
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `agent config ${field}: ${issue.message}${known}`, { field });
  }
  const resolved = validate(r.data);
  const sources = [explicitFile !== undefined || Object.keys(fileLayer).length > 0 ? file : undefined, Object.keys(envLayer).length > 0 ? 'environment' : undefined, Object.keys(flagLayer).length > 0 ? 'options' : undefined].filter(
    (s): s is string => s !== undefined,
  );
  const config = { ...r.data, api: { ...r.data.api, ...resolved }, source: sources } as AgentConfig;
  return { config: deepFreeze(config), checkOnly: values['check-config'] === true };
}

/** The config as JSON for --check-config and logs: secrets are masked. */
export function redactConfig(c: AgentConfig): unknown {
  return JSON.parse(JSON.stringify(c, (k, v: unknown) => (k === 'token' && typeof v === 'string' ? '***' : v)));
}
