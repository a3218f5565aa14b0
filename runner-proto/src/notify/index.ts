export { PollingNotifier } from './polling.js';
export type { PollingOptions } from './polling.js';
export type { Notifier } from './types.js';
