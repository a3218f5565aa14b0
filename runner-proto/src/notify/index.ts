export { FutexNotifier } from './futex.js';
export type { FutexOptions } from './futex.js';
export { PollingNotifier, spin } from './polling.js';
export type { PollingOptions } from './polling.js';
export type { DoorbellWords, Notifier } from './types.js';
