import type { DoorbellWords, Notifier } from './types.js';

export interface PollingOptions {
  /** Busy-spin this long first (lowest latency when the peer answers at once). */
  readonly spinUs?: number;
  /** Then poll on every event-loop turn for this long. */
  readonly hotMs?: number;
  /** Then sleep with timers, backing off to this interval. */
  readonly maxSleepMs?: number;
}

/**
 * Spins synchronously for up to `spinUs`; true as soon as `changed()` is. The clock is read every 32nd check:
 * a read costs about as much as a check of a ring index, and would otherwise halve how often the state is seen.
 */
export function spin(changed: () => boolean, spinUs: number): boolean {
  if (changed()) return true;
  const end = performance.now() + spinUs / 1000;
  for (let i = 1; ; i++) {
    if (changed()) return true;
    if ((i & 31) === 0 && performance.now() >= end) return false;
  }
}

/**
 * Spin-then-sleep polling: the only notification that works across a VM boundary without a device interrupt
 * (ivshmem-plain). Costs CPU while hot, one timer wake-up per `maxSleepMs` when idle.
 */
export class PollingNotifier implements Notifier {
  readonly name: string = 'polling';
  readonly wantsKicks: boolean = false;
  protected readonly spinUs: number;
  private readonly hotMs: number;
  private readonly maxSleepMs: number;
  protected closed = false;
  /** Ends the current timer sleep of wait() early (interrupt()); undefined while not asleep on a timer. */
  private wake: (() => void) | undefined;
  private interrupted = false;

  constructor(options: PollingOptions = {}) {
    this.spinUs = options.spinUs ?? 50;
    this.hotMs = options.hotMs ?? 2;
    this.maxSleepMs = options.maxSleepMs ?? 4;
  }

  bind(_bell: DoorbellWords): void {
    // The doorbell word itself is the signal: nothing to set up.
  }

  async wait(changed: () => boolean, timeoutMs: number): Promise<boolean> {
    if (spin(changed, this.spinUs)) return true;
    const start = performance.now();
    const hotEnd = start + this.hotMs;
    const deadline = start + timeoutMs;
    let sleep = 0.25;
    this.interrupted = false;
    for (;;) {
      if (this.closed || this.interrupted) return false;
      const now = performance.now();
      if (now >= deadline) return false;
      if (now < hotEnd) {
        await new Promise<void>((r) => setImmediate(r));
      } else {
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(sleep, deadline - now));
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = undefined;
        sleep = Math.min(sleep * 2, this.maxSleepMs);
      }
      if (this.closed) return false;
      if (changed()) return true;
    }
  }

  /** Ends a wait() in progress (it resolves false at its next turn), waking it from a timer sleep at once. */
  interrupt(): void {
    this.interrupted = true;
    this.wake?.();
  }

  kick(): void {
    // The producer already bumped the doorbell word; the poller sees it move.
  }

  close(): void {
    this.closed = true;
  }
}
