export { LineSplitter, LogRing, MAX_LINE, matches } from './log-ring.js';
export type { LogEntry, LogFilter, LogStream } from './log-ring.js';
export { createAgentLogger } from './agent-logger.js';
