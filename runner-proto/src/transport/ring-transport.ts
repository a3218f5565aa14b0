import { AgentError } from '../errors/index.js';
import { spin, type Notifier } from '../notify/index.js';
import { CTRL_DOORBELL, RING_CTRL_OFFSETS, Side, type Region } from '../region/index.js';
import { RingConsumer, RingProducer, type FrameToSend } from '../ring/index.js';
import type { FrameTransport, TransportHandlers } from './types.js';

/** How long a sender spins on a full ring before it yields to the event loop. */
const FULL_SPIN_US = 200;

export interface RingTransportOptions {
  readonly region: Region;
  readonly side: Side;
  readonly notifier: Notifier;
  /** Address of the region in this process when it is an mmap (futex notification needs it). */
  readonly baseAddress?: bigint;
  /** Longest sleep between checks of the receive ring when idle; bounds how stale a missed kick can get. */
  readonly idleCheckMs?: number;
  /** Frames handled per turn before yielding to the event loop, so one busy ring cannot starve sockets. */
  readonly batch?: number;
}

/**
 * Frames over the shared-memory ring pair. The agent produces into ring 0 and consumes ring 1; the runner the
 * reverse. Sending never blocks the event loop: when the ring is full it waits, bounded, for the consumer.
 */
export class RingTransport implements FrameTransport {
  readonly kind = 'ring' as const;
  readonly maxBody: number;
  readonly tx: RingProducer;
  readonly rx: RingConsumer;
  private readonly notifier: Notifier;
  private readonly idleCheckMs: number;
  private readonly batch: number;
  private handlers: TransportHandlers | undefined;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private sendChain: Promise<void> = Promise.resolve();
  /** Frames queued behind a full ring; while any wait, new frames queue too (order is kept). */
  private waiting = 0;
  framesIn = 0;
  framesOut = 0;
  faults = 0;
  /**
   * Frame types whose handler consumes the body synchronously (e.g. module chunks copied into an assembly):
   * they get a view into the ring instead of a copy. Their handler must not keep the body.
   */
  borrow: ((type: number) => boolean) | undefined;

  constructor(options: RingTransportOptions) {
    const txIndex = options.side === Side.Agent ? 0 : 1;
    this.tx = new RingProducer(options.region.ring(txIndex));
    this.rx = new RingConsumer(options.region.ring(txIndex === 0 ? 1 : 0));
    this.maxBody = Math.min(this.tx.maxBody, this.rx.maxBody);
    this.notifier = options.notifier;
    const rxIndex = txIndex === 0 ? 1 : 0;
    this.notifier.bind({
      words: options.region.words,
      rxIndex: (RING_CTRL_OFFSETS[rxIndex] + CTRL_DOORBELL) >> 2,
      txIndex: (RING_CTRL_OFFSETS[txIndex] + CTRL_DOORBELL) >> 2,
      baseAddress: options.baseAddress,
    });
    this.idleCheckMs = options.idleCheckMs ?? 1000;
    this.batch = options.batch ?? 256;
  }

  start(handlers: TransportHandlers): void {
    if (this.running) return;
    this.handlers = handlers;
    this.running = true;
    this.loopDone = this.receiveLoop();
  }

  private drain(): number {
    const h = this.handlers!;
    let n = 0;
    while (n < this.batch) {
      const r = this.rx.read(this.borrow);
      if (r === undefined) break;
      if ('code' in r) {
        // Nothing after a bad frame can be trusted: ask the producer to restart the ring, and ring its
        // doorbell (our transmit ring's) so a sleeping peer services the request at once.
        this.faults++;
        this.rx.requestReset();
        this.kickPeer();
        h.fault(r);
        break;
      }
      n++;
      this.framesIn++;
      // Released after the handler: a borrowed body points into the ring until then.
      h.frame(r);
      this.rx.release();
    }
    return n;
  }

  /** Wakes the peer whatever its want-kick flag says (reset requests must not wait for traffic). */
  private kickPeer(): void {
    this.tx.ringDoorbell();
    this.notifier.kick();
  }

  private async receiveLoop(): Promise<void> {
    let sinceYield = 0;
    while (this.running) {
      if (this.tx.serviceReset()) this.notifier.kick();
      const n = this.drain();
      sinceYield += n;
      if (sinceYield >= this.batch) {
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      if (n > 0) continue;
      sinceYield = 0;
      if (!this.rx.armKick()) continue;
      const bell = this.rx.doorbell();
      const txBell = this.tx.resetRequested();
      await this.notifier.wait(
        () => !this.running || this.rx.doorbell() !== bell || !this.rx.isEmpty() || this.tx.resetRequested() !== txBell,
        this.idleCheckMs,
      );
      this.rx.disarmKick();
    }
  }

  send(f: FrameToSend, timeoutMs = 10_000): Promise<void> {
    if (f.body.length > this.maxBody) {
      return Promise.reject(new AgentError('AGT_ERR_CHANNEL_FRAME', `frame body of ${f.body.length} bytes exceeds the ring maximum ${this.maxBody}`));
    }
    // Fast path: nobody is waiting for space, and this frame fits: write and publish now, in call order.
    if (this.waiting === 0 && this.tx.tryWrite(f)) {
      this.framesOut++;
      if (this.tx.publish()) this.notifier.kick();
      return Promise.resolve();
    }
    // One writer at a time keeps frames in call order even when some wait for space.
    this.waiting++;
    const next = this.sendChain.then(() => this.write(f, timeoutMs)).finally(() => {
      this.waiting--;
    });
    this.sendChain = next.catch(() => undefined);
    return next;
  }

  private async write(f: FrameToSend, timeoutMs: number): Promise<void> {
    if (!this.tx.tryWrite(f)) {
      // A consumer that is draining frees space within microseconds: spin briefly before yielding.
      if (spin(() => this.tx.tryWrite(f), FULL_SPIN_US)) {
        this.framesOut++;
        if (this.tx.publish()) this.notifier.kick();
        return;
      }
      const deadline = performance.now() + timeoutMs;
      let sleep = 0;
      while (!this.tx.tryWrite(f)) {
        if (!this.running && this.handlers !== undefined) throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'ring transport closed');
        if (performance.now() > deadline) {
          throw new AgentError('AGT_ERR_TIMEOUT', `ring full for ${timeoutMs} ms: the peer is not consuming`, { timeoutMs });
        }
        // Back-pressure: the consumer frees space at its own pace; poll with a short back-off.
        await new Promise<void>((r) => (sleep === 0 ? setImmediate(r) : setTimeout(r, sleep)));
        sleep = Math.min(sleep + 0.5, 2);
      }
    }
    this.framesOut++;
    if (this.tx.publish()) this.notifier.kick();
  }

  async close(): Promise<void> {
    this.running = false;
    this.notifier.close();
    // The region may be unmapped right after close(): nothing may touch it once this resolves.
    await this.loopDone;
    await this.sendChain;
  }
}
