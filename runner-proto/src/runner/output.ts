import type { Endpoint } from '../channel/index.js';
import type { Logger } from '../log/index.js';

interface RunQueue {
  readonly corr: number;
  readonly ep: Endpoint;
  readonly chunks: Array<{ type: number; body: Uint8Array }>;
  bytes: number;
  /** The engine is holding this run's output (its callback returned false). */
  held: boolean;
  resume: (() => void) | undefined;
  drained: Array<() => void>;
}

/** Above this many queued bytes a run's output is held in the engine (and the module blocks on write). */
const HIGH_WATER = 256 * 1024;
/** Held output is released once the queue falls below this. */
const LOW_WATER = 64 * 1024;

/**
 * Sends the output of many runs over one channel fairly: one chunk from each run in turn, so a module flooding
 * stdout cannot delay another module's output behind its backlog. Memory is bounded per run: past the high-water
 * mark the engine holds the run's output (back-pressure reaches the module itself), and releases it below the
 * low-water mark.
 */
export class OutputScheduler {
  private readonly runs = new Map<number, RunQueue>();
  private order: number[] = [];
  private next = 0;
  private pumping = false;
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  open(corr: number, ep: Endpoint): void {
    this.runs.set(corr, { corr, ep, chunks: [], bytes: 0, held: false, resume: undefined, drained: [] });
    this.order.push(corr);
  }

  /** Lets the scheduler release held output later. */
  setResume(corr: number, resume: (() => void) | undefined): void {
    const q = this.runs.get(corr);
    if (q) q.resume = resume;
  }

  /** Queues a chunk; returns false when the engine should hold further output of this run. */
  push(corr: number, type: number, body: Uint8Array): boolean {
    const q = this.runs.get(corr);
    if (!q) return true;
    q.chunks.push({ type, body });
    q.bytes += body.length;
    void this.pump();
    if (q.bytes > HIGH_WATER) {
      q.held = true;
      return false;
    }
    return true;
  }

  /** Resolves once everything queued for `corr` has been handed to the channel; then forgets the run. */
  close(corr: number): Promise<void> {
    const q = this.runs.get(corr);
    if (!q) return Promise.resolve();
    const done = (): void => {
      this.runs.delete(corr);
      this.order = this.order.filter((c) => c !== corr);
    };
    if (q.chunks.length === 0) {
      done();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      q.drained.push(() => {
        done();
        resolve();
      });
    });
  }

  /** Drops a run's queue (its agent is gone). */
  discard(corr: number): void {
    const q = this.runs.get(corr);
    if (!q) return;
    q.chunks.length = 0;
    q.bytes = 0;
    for (const d of q.drained.splice(0)) d();
    this.runs.delete(corr);
    this.order = this.order.filter((c) => c !== corr);
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const q = this.pickNext();
        if (!q) break;
        const chunk = q.chunks.shift()!;
        q.bytes -= chunk.body.length;
        try {
          await q.ep.send(chunk.type, q.corr, chunk.body);
        } catch (err) {
          this.logger.warn({ corr: q.corr, err: String(err) }, 'output frame lost');
        }
        if (q.held && q.bytes < LOW_WATER) {
          q.held = false;
          q.resume?.();
        }
        if (q.chunks.length === 0) for (const d of q.drained.splice(0)) d();
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Round robin over runs with queued output. */
  private pickNext(): RunQueue | undefined {
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const corr = this.order[(this.next + i) % n]!;
      const q = this.runs.get(corr);
      if (q && q.chunks.length > 0) {
        this.next = (this.next + i + 1) % n;
        return q;
      }
    }
    return undefined;
  }
}
