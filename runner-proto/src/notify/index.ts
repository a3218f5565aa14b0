export { FutexNotifier } from './futex.js';
export type { FutexOptions } from './futex.js';
export { PollingNotifier, spin } from './polling.js';
export type { PollingOptions } from './polling.js';
export type { DoorbellWords, Notifier } from './types.js';

import { FutexNotifier } from './futex.js';
import { PollingNotifier } from './polling.js';
import type { Notifier } from './types.js';

/** `polling` works everywhere, across a VM boundary too; `futex` sleeps without CPU where both sides share a kernel. */
export type NotifyMode = 'polling' | 'futex';
export const NOTIFY_MODES: readonly NotifyMode[] = ['polling', 'futex'];

export function createNotifier(mode: NotifyMode): Notifier {
  return mode === 'futex' ? new FutexNotifier() : new PollingNotifier();
}
