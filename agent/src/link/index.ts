export { RunnerLink } from './runner-link.js';
export type { ChannelCounters, ConnectedInfo, LinkConfig, LinkStatus, RunHandle, RunOutput } from './runner-link.js';
