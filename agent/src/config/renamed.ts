import { AgentError } from '../../../runner-proto/src/errors/index.js';

/**
 * Keys that moved, with where they live now. A config that still uses one is refused with the new name
 * ("use X instead") rather than silently ignored.
 */
export const RENAMED_KEYS: Readonly<Record<string, string>> = Object.freeze({
  store: 'stateDir',
  stateDirectory: 'stateDir',
  socket: 'api.socket',
  socketMode: 'api.socketMode',
  maxModule: 'policy.maxModuleBytes',
  maxModuleBytes: 'policy.maxModuleBytes',
  region: 'runner: {"kind": "ring", "path": ...}',
  notify: 'runner.notify',
  token: 'api.tcp.tokenFile',
  'api.token': 'api.tcp.tokenFile',
  'api.tokenFile': 'api.tcp.tokenFile',
  'api.port': 'api.tcp.port',
  'trust.keys': 'trust.keysDir',
  'trust.required': 'trust.requireSignature',
  'inbox.path': 'inbox.dir',
  'inbox.stabilityMs': 'inbox.settleMs',
  logLevel: 'logs.level',
});

/** Throws AGT_ERR_CONFIG_INVALID for the first renamed key found in `raw` (a parsed config file). */
export function refuseRenamedKeys(raw: unknown, source: string): void {
  if (typeof raw !== 'object' || raw === null) return;
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const now = RENAMED_KEYS[key];
      if (now !== undefined) {
        throw new AgentError('AGT_ERR_CONFIG_INVALID', `${source}: key ${key} was renamed, use ${now} instead`, { field: key, rule: 'renamed-key' });
      }
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) walk(v as Record<string, unknown>, key);
    }
  };
  walk(raw as Record<string, unknown>, '');
}
