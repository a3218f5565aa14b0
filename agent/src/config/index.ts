export { AGENT_USAGE, loadAgentConfig, redactConfig } from './load.js';
export type { AgentConfig, LoadedConfig } from './load.js';
export { RENAMED_KEYS } from './renamed.js';
export { configFileSchema } from './schema.js';
export { DEFAULT_CONFIG_FILE } from './sources.js';
export { validate } from './validate.js';
