export { RunnerLink } from './runner-link.js';
export type { LinkConfig, LinkStatus, RunHandle, RunOutput } from './runner-link.js';
