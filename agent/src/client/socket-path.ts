import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where the systemd unit (agent/systemd/) puts the socket: a RuntimeDirectory the agent's own user owns. */
export const SYSTEMD_SOCKET = '/run/wasmedge-agent/agent.sock';

/**
 * Where the CLI and the agent meet when nothing else is said: $WASMEDGE_AGENT_SOCKET, else (for clients) the
 * systemd unit's socket when it exists, else /run/wasmedge-agent.sock for root, else $XDG_RUNTIME_DIR or the
 * temp directory.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, options: { probeSystemd?: boolean } = {}): string {
  if (env.WASMEDGE_AGENT_SOCKET) return env.WASMEDGE_AGENT_SOCKET;
  if (options.probeSystemd && fs.existsSync(SYSTEMD_SOCKET)) return SYSTEMD_SOCKET;
  const dir = env.XDG_RUNTIME_DIR ?? (process.getuid?.() === 0 ? '/run' : os.tmpdir());
  return path.join(dir, 'wasmedge-agent.sock');
}
