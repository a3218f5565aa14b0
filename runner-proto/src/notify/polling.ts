import type { Notifier } from './types.js';

export interface PollingOptions {
  /** Busy-spin this long on the first check (lowest latency when the peer answers at once). */
  readonly spinUs?: number;
  /** Then poll on every event-loop turn for this long. */
  readonly hotMs?: number;
  /** Then sleep with timers, backing off to this interval. */
  readonly maxSleepMs?: number;
}

/**
 * Spin-then-sleep polling: the only notification that works across a VM boundary without a device interrupt
 * (ivshmem-plain). Costs CPU while hot, a timer wake-up per `maxSleepMs` when idle.
 */
export class PollingNotifier implements Notifier {
  readonly name = 'polling';
  private readonly spinUs: number;
  private readonly hotMs: number;
  private readonly maxSleepMs: number;
  private closed = false;

  constructor(options: PollingOptions = {}) {
    this.spinUs = options.spinUs ?? 50;
    this.hotMs = options.hotMs ?? 2;
    this.maxSleepMs = options.maxSleepMs ?? 4;
  }

  async wait(changed: () => boolean, timeoutMs: number): Promise<boolean> {
    const start = performance.now();
    const spinEnd = start + this.spinUs / 1000;
    while (performance.now() < spinEnd) if (changed()) return true;
    const hotEnd = start + this.hotMs;
    const deadline = start + timeoutMs;
    let sleep = 0.25;
    for (;;) {
      if (this.closed) return false;
      const now = performance.now();
      if (now >= deadline) return false;
      if (now < hotEnd) {
        await new Promise<void>((r) => setImmediate(r));
      } else {
        await new Promise<void>((r) => setTimeout(r, Math.min(sleep, deadline - now)));
        sleep = Math.min(sleep * 2, this.maxSleepMs);
      }
      if (this.closed) return false;
      if (changed()) return true;
    }
  }

  kick(): void {
    // The doorbell word in shared memory is the kick; the poller sees it move.
  }

  close(): void {
    this.closed = true;
  }
}
