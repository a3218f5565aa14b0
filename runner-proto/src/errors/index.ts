export { AgentError, ERROR_CATALOGUE, errorFromJSON, isErrorCode, toAgentError } from './catalogue.js';
export type { ErrorCode, ErrorDetails } from './catalogue.js';
