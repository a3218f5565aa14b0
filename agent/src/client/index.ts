export { AgentClient } from './agent-client.js';
export type { RunCallbacks } from './agent-client.js';
export { defaultSocketPath } from './socket-path.js';
