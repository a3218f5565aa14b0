import { AGENT_USAGE, loadAgentConfig, type AgentConfig } from '../config/index.js';

/**
 * The daemon's view of its configuration. The file, environment and flag layers, the schema and the
 * cross-field rules live in ../config/; this keeps the historical entry point (tests and the QEMU guest call
 * `wasmedge-agent --region ... | --runner-socket ... | --runner-serial ...`).
 */
export type { AgentConfig };
export { AGENT_USAGE };

/** Parses argv and WASMEDGE_AGENT_* overrides (and the config file) once into a frozen config. */
export function parseAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return loadAgentConfig(argv, env).config;
}
