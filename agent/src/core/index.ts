export { AgentCore } from './agent-core.js';
export type { AgentStatus, RunRequest, UploadResult } from './agent-core.js';
