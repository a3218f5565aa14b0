export { AgentClient } from './agent-client.js';
export type { AgentAddress, CallAnswer, InvokeAnswer, RunCallbacks } from './agent-client.js';
export { SYSTEMD_SOCKET, defaultSocketPath } from './socket-path.js';
