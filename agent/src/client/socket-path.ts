import os from 'node:os';
import path from 'node:path';

/** Where the CLI and the agent meet when nothing else is said. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WASMEDGE_AGENT_SOCKET) return env.WASMEDGE_AGENT_SOCKET;
  const dir = env.XDG_RUNTIME_DIR ?? (process.getuid?.() === 0 ? '/run' : os.tmpdir());
  return path.join(dir, 'wasmedge-agent.sock');
}
