export { AgentCore } from './agent-core.js';
export type { AgentCoreOptions, AgentStatus, RunRequest, UploadOptions, UploadResult } from './agent-core.js';
