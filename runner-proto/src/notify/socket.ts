import type { Duplex } from 'node:stream';
import { spin } from './polling.js';
import type { DoorbellWords, Notifier } from './types.js';

const KICK = Buffer.from([1]);

export interface SocketNotifierOptions {
  /** Synchronous spin before sleeping (default 0: RingTransport's hot phase polls without blocking the loop). */
  readonly spinUs?: number;
}

/**
 * Doorbells as single bytes on a byte stream beside the ring: a Unix socket between two host processes, or a
 * virtio-serial port across a VM boundary. The sleeper waits in the event loop itself (epoll), so a wake-up costs
 * one thread switch per side, as a socket message does; the flag-and-recheck rule means a byte is sent only when
 * the peer is actually asleep, so under load the ring moves data with no kicks at all.
 * The stream can be replaced (the peer reconnected) without recreating the notifier.
 */
export class SocketNotifier implements Notifier {
  readonly name = 'socket';
  readonly wantsKicks = true;
  private readonly spinUs: number;
  private stream: Duplex | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  kicksSent = 0;

  constructor(options: SocketNotifierOptions = {}) {
    this.spinUs = options.spinUs ?? 0;
  }

  /** Uses `stream` for kicks from now on (a new connection replaces the old one). */
  attach(stream: Duplex): void {
    this.stream = stream;
    stream.on('data', () => this.wake?.());
    stream.on('close', () => {
      if (this.stream === stream) this.stream = undefined;
      this.wake?.();
    });
    stream.on('error', () => undefined);
  }

  bind(_bell: DoorbellWords): void {
    // The doorbell words still move (polling peers and tests read them); the bytes are the wake-up.
  }

  async wait(changed: () => boolean, timeoutMs: number): Promise<boolean> {
    if (spin(changed, this.spinUs)) return true;
    const deadline = performance.now() + timeoutMs;
    while (!this.closed) {
      if (changed()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
    return false;
  }

  kick(): void {
    const s = this.stream;
    if (!s || this.closed || s.destroyed) return;
    this.kicksSent++;
    s.write(KICK);
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }
}
