export { FutexNotifier } from './futex.js';
export type { FutexOptions } from './futex.js';
export { PollingNotifier, spin } from './polling.js';
export { SocketNotifier } from './socket.js';
export type { SocketNotifierOptions } from './socket.js';
export type { PollingOptions } from './polling.js';
export type { DoorbellWords, Notifier } from './types.js';

import { FutexNotifier } from './futex.js';
import { PollingNotifier } from './polling.js';
import { SocketNotifier } from './socket.js';
import type { Notifier } from './types.js';

/**
 * `polling` works everywhere, across a VM boundary too; `futex` and `socket` sleep without CPU: futex where both
 * sides share a kernel, socket (a byte per kick on a Unix socket or virtio-serial port) anywhere a stream exists.
 */
export type NotifyMode = 'polling' | 'futex' | 'socket';
export const NOTIFY_MODES: readonly NotifyMode[] = ['polling', 'futex', 'socket'];

export function createNotifier(mode: NotifyMode): Notifier {
  if (mode === 'futex') return new FutexNotifier();
  if (mode === 'socket') return new SocketNotifier();
  return new PollingNotifier();
}
