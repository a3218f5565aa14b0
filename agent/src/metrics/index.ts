export { AgentMetrics } from './agent-metrics.js';
export type { MetricSources } from './agent-metrics.js';
