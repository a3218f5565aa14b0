import { AgentError } from '../errors/index.js';
import { FLAG_BODY_CRC, copyBytes } from '../frame/index.js';
import { spin, type Notifier } from '../notify/index.js';
import { CTRL_DOORBELL, RING_CTRL_OFFSETS, Side, type Region } from '../region/index.js';
import { RingConsumer, RingProducer, frameSlot, type FrameSlot, type FrameToSend } from '../ring/index.js';
import type { FrameTransport, TransportHandlers } from './types.js';

const SENT = Promise.resolve();

interface PendingSend {
  readonly frame: FrameToSend;
  readonly timeoutMs: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** How long a sender spins on a full ring before it yields to the event loop. */
const FULL_SPIN_US = 200;
/** Then how long it polls on every event-loop turn before it backs off to timers. */
const FULL_HOT_MS = 20;

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
  /**
   * Longest time the receive loop holds the event loop before yielding, whatever the frame count (default
   * 10 ms): a handler that costs milliseconds per frame (a slow output listener) would otherwise hold it for
   * `batch` frames, long enough to starve timers such as a heartbeat that beats from the loop.
   */
  readonly yieldAfterMs?: number;
  /**
   * After the last frame, keep checking the receive ring once per event-loop turn for this long before asking
   * for a kick and sleeping (default 200 µs). See HOT_US.
   */
  readonly hotUs?: number;
  /** After sending a request, poll for its answer this long before sleeping (default 1000 µs). See ANSWER_HOT_US. */
  readonly answerHotUs?: number;
  /**
   * True once the peer this transport was made for is gone (its epoch word changed). A bad frame then means the
   * region was re-initialised by a new peer, not that the ring is damaged: asking that new peer for a reset would
   * make it throw away the first frames of its own session, so the transport stops reading and lets the link
   * reconnect instead.
   */
  readonly peerReplaced?: () => boolean;
}

/**
 * Spin-then-block, done without blocking the event loop. An answer to a frame we just handled usually
 * arrives within tens of microseconds; a consumer that went straight to sleep would pay a full wake-up (a
 * futex wake through a worker thread, or a socket read: about 100 µs across vCPUs here) on every exchange.
 * Polling once per event-loop turn for a short window keeps back-to-back exchanges at ring speed, lets the
 * code that consumed the frame run and send its next request meanwhile (a synchronous spin would hold it
 * back), and costs no CPU once traffic stops. Nothing is armed while hot, so the producer sends no kicks.
 */
const HOT_US = 200;

/**
 * The same, for the answer to a request this side just sent (expectAnswer): a peer that was asleep needs a
 * futex wake-up and its own turn (a few hundred µs here) before it answers, longer than HOT_US. Sleeping
 * meanwhile would make the answer pay a second wake-up on the way back (the peer's kick, our worker thread,
 * then our event loop), and the peer a kick syscall; polling for up to this long costs at most this much CPU
 * per request whose answer is slower (a compile, a long call).
 */
const ANSWER_HOT_US = 1000;

/**
 * With a polling notifier, how long the receive loop spins for the next frame before it calls wait() (which
 * spins again before it yields). Long enough for a peer answering at once (a few µs), short enough not to add
 * much to the time the event loop is held while traffic trickles.
 */
const POLL_SPIN_US = 10;

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
  private readonly yieldAfterMs: number;
  /** When the receive loop last gave the event loop a turn. */
  private lastYield = 0;
  private readonly hotMs: number;
  private readonly answerHotMs: number;
  private readonly peerReplaced: () => boolean;
  /** Bound once: the polling receive loop spins on it after every batch. */
  private readonly hasFrame = (): boolean => !this.rx.isEmpty();
  /** Until when an answer is expected (expectAnswer): the receive loop polls rather than sleeps. */
  private answerUntil = 0;
  /** The receive loop is in notifier.wait(). */
  private sleeping = false;
  private handlers: TransportHandlers | undefined;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Frames queued behind a full ring (settled entries before pendingHead are undefined); order is kept. */
  private readonly pending: (PendingSend | undefined)[] = [];
  private pendingHead = 0;
  private pumping = false;
  private pumpDone: Promise<void> = Promise.resolve();
  framesIn = 0;
  framesOut = 0;
  faults = 0;
  /**
   * Frame types whose handler consumes the body synchronously (e.g. module chunks copied into an assembly):
   * they get a view into the ring instead of a copy. Their handler must not keep the body, except by passing it
   * to send() (which copies it if the frame has to wait for space).
   */
  borrow: ((type: number) => boolean) | undefined;
  /**
   * A request answered right here, ring to ring: each frame of type `request` goes back as an `answer` with the
   * same corr, flags and body (what ECHO asks of a runner), with no frame object, no handler and no copy of the
   * body out of the ring. Frames of that type then never reach the handler, except ones that carry a body CRC,
   * arrive while sends are queued (so answers keep their order) or find the transmit ring full: those take the
   * ordinary path.
   */
  echo: { readonly request: number; readonly answer: number } | undefined;
  private readonly slot = frameSlot();

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
    this.yieldAfterMs = options.yieldAfterMs ?? 10;
    this.hotMs = (options.hotUs ?? HOT_US) / 1000;
    this.answerHotMs = (options.answerHotUs ?? ANSWER_HOT_US) / 1000;
    this.peerReplaced = options.peerReplaced ?? (() => false);
  }

  start(handlers: TransportHandlers): void {
    if (this.running) return;
    this.handlers = handlers;
    this.running = true;
    this.loopDone = this.receiveLoop();
  }

  private drain(): number {
    const h = this.handlers!;
    const rx = this.rx;
    const s = this.slot;
    let n = 0;
    while (n < this.batch) {
      const found = rx.peek(s);
      if (found === false) break;
      const f = found !== true ? found : this.answeredInPlace(s) ? undefined : rx.take(s, this.borrow?.(s.type) === true);
      if (f !== undefined && 'code' in f) {
        this.faults++;
        if (this.peerReplaced()) {
          // Not damage: a new peer re-initialised the region under us. Leave its rings alone (see peerReplaced).
          this.running = false;
          h.fault(f);
          break;
        }
        // Nothing after a bad frame can be trusted: ask the producer to restart the ring, and ring its
        // doorbell (our transmit ring's) so a sleeping peer services the request at once.
        rx.requestReset();
        this.kickPeer();
        h.fault(f);
        break;
      }
      n++;
      this.framesIn++;
      // Released after the handler: a borrowed body points into the ring until then.
      if (f !== undefined) h.frame(f);
      rx.release();
      // The clock every 8th frame: cheap frames finish a batch long before the budget, costly ones hit it.
      if ((n & 7) === 0 && performance.now() - this.lastYield > this.yieldAfterMs) break;
    }
    return n;
  }

  /** The frame peeked into `s` is an `echo` request and its answer is written and published (see `echo`). */
  private answeredInPlace(s: FrameSlot): boolean {
    const echo = this.echo;
    if (echo === undefined || s.type !== echo.request || (s.flags & FLAG_BODY_CRC) !== 0 || s.length > this.maxBody || this.queued() !== 0) return false;
    if (!this.tx.tryWriteFrom(echo.answer, s.flags, s.corr, this.rx, s)) return false;
    this.rx.skip(s);
    this.framesOut++;
    if (this.tx.publish()) this.notifier.kick();
    return true;
  }

  /** Wakes the peer whatever its want-kick flag says (reset requests must not wait for traffic). */
  private kickPeer(): void {
    this.tx.ringDoorbell();
    this.notifier.kick();
  }

  private async receiveLoop(): Promise<void> {
    let sinceYield = 0;
    let lastFrame = -Infinity;
    let seenBell = this.rx.doorbell();
    let turns = 0;
    this.lastYield = performance.now();
    while (this.running) {
      const n = this.drain();
      // A reset request always comes with a ring of our receive doorbell (§14), a word the peer writes only for
      // kicks: look at the request itself only then, and every 64th turn in case a ring was missed. The request
      // word shares a cache line with the head the peer moves on every frame it takes, so loading it on every
      // turn would put a cache-line transfer in front of every answer.
      const rang = this.rx.doorbell();
      if (rang !== seenBell || (++turns & 63) === 0) {
        seenBell = rang;
        if (this.tx.serviceReset()) this.notifier.kick();
      }
      sinceYield += n;
      if (n > 0) lastFrame = performance.now();
      if (sinceYield >= this.batch || (n > 0 && lastFrame - this.lastYield > this.yieldAfterMs)) {
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
        this.lastYield = performance.now();
        continue;
      }
      if (n > 0) continue;
      if (!this.notifier.wantsKicks) {
        // First let promise continuations of the frames just handled run (one microtask checkpoint): they are
        // often what sends the next request, and code may rely on a `.then` having run before a later frame.
        await undefined;
        // Then spin inline for the next frame: wait() spins the same way, but behind an async call (a promise and
        // a microtask turn per frame, as much as the frame itself costs at ring speed). Frames that keep coming
        // within the window count towards the batch, so the loop still yields to the event loop every `batch`.
        if (spin(this.hasFrame, POLL_SPIN_US)) continue;
      }
      sinceYield = 0;
      // Polling notifiers spin on their own; the hot phase is for the ones that sleep.
      const now = performance.now();
      if ((this.notifier.wantsKicks && now - lastFrame < this.hotMs) || now < this.answerUntil) {
        await new Promise<void>((r) => setImmediate(r));
        this.lastYield = performance.now();
        continue;
      }
      if (this.notifier.wantsKicks ? !this.rx.armKick() : !this.rx.isEmpty()) continue;
      const bell = this.rx.doorbell();
      const txBell = this.tx.resetRequested();
      this.sleeping = true;
      let checks = 0;
      await this.notifier.wait(
        // Reset requests are rare and a few microseconds late is soon enough: looking at that word only every
        // 64th check keeps a spinning consumer from pulling the line the peer's head lives on at every turn.
        () => !this.running || !this.rx.isEmpty() || this.rx.doorbell() !== bell || ((++checks & 63) === 0 && this.tx.resetRequested() !== txBell),
        this.idleCheckMs,
      );
      this.sleeping = false;
      if (this.notifier.wantsKicks) this.rx.disarmKick();
    }
  }

  /**
   * This side just sent a request: poll for the answer for a while (answerHotUs) instead of sleeping, so it
   * is taken off the ring as it lands and the peer, seeing no kick wanted, sends none. false: no answer is
   * awaited any more (back to the ordinary hot phase).
   */
  expectAnswer(on: boolean, hotUs?: number): void {
    if (!on) {
      this.answerUntil = 0;
      return;
    }
    // Polling notifiers too: one that has gone quiet sleeps on timers (up to several ms) and would notice the
    // answer that much later.
    this.answerUntil = Math.max(this.answerUntil, performance.now() + (hotUs === undefined ? this.answerHotMs : hotUs / 1000));
    if (this.sleeping) this.notifier.interrupt?.();
  }

  send(f: FrameToSend, timeoutMs = 10_000): Promise<void> {
    if (f.body.length > this.maxBody) {
      return Promise.reject(new AgentError('AGT_ERR_CHANNEL_FRAME', `frame body of ${f.body.length} bytes exceeds the ring maximum ${this.maxBody}`));
    }
    // Fast path: nobody is waiting for space, and this frame fits: write and publish now, in call order.
    if (this.queued() === 0 && this.tx.tryWrite(f)) {
      this.framesOut++;
      if (this.tx.publish()) this.notifier.kick();
      return SENT;
    }
    // Behind a full ring. Frames wait in call order; the queue holds only what callers have not yet seen
    // settle, so it is bounded by their own back-pressure (they await the promise). A body lent from our receive
    // ring (a borrowed frame sent straight back, as ECHO is) is copied: the ring reuses that space once the
    // handler returns.
    const frame = this.rx.lends(f.body) ? { ...f, body: copyBytes(f.body, 0, f.body.length) } : f;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ frame, timeoutMs, resolve, reject });
      if (!this.pumping) this.pumpDone = this.pump();
    });
  }

  private queued(): number {
    return this.pending.length - this.pendingHead;
  }

  /**
   * Writes queued frames as space frees up. One loop for the whole queue (rather than a promise chain per
   * frame) keeps a saturated ring at copy speed: each frame costs a tryWrite and a resolve, and frames written
   * together are published together.
   */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      let stalledAt = -1; // when the frame at the head of the queue first found no space
      let sleep = 0;
      while (this.queued() > 0) {
        let wrote = 0;
        while (this.queued() > 0 && this.tx.tryWrite(this.pending[this.pendingHead]!.frame)) {
          this.settleHead()?.resolve();
          wrote++;
        }
        if (wrote > 0) {
          this.framesOut += wrote;
          if (this.tx.publish()) this.notifier.kick();
          stalledAt = -1;
          sleep = 0;
          continue;
        }
        if (!this.running && this.handlers !== undefined) {
          this.rejectAll(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'ring transport closed'));
          return;
        }
        const now = performance.now();
        if (stalledAt < 0) {
          stalledAt = now;
          // A consumer that is draining frees space within microseconds: spin briefly before yielding.
          const free = this.tx.free();
          if (spin(() => this.tx.free() > free, FULL_SPIN_US)) continue;
        }
        const waited = performance.now() - stalledAt;
        const timeoutMs = this.pending[this.pendingHead]!.timeoutMs;
        if (waited > timeoutMs) {
          this.settleHead()?.reject(new AgentError('AGT_ERR_TIMEOUT', `ring full for ${timeoutMs} ms: the peer is not consuming`, { timeoutMs }));
          stalledAt = -1;
          continue;
        }
        // Back-pressure. A draining consumer empties a whole ring in about 100 µs, far below a timer's 1 ms
        // granularity, so a writer that slept on a timer would leave the ring idle most of the time: poll on
        // every event-loop turn while the consumer is plausibly busy, and only then back off with timers.
        if (waited < FULL_HOT_MS) {
          await new Promise<void>((r) => setImmediate(r));
        } else {
          await new Promise<void>((r) => setTimeout(r, sleep));
          sleep = Math.min(sleep + 0.5, 2);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private settleHead(): PendingSend | undefined {
    const p = this.pending[this.pendingHead];
    this.pending[this.pendingHead++] = undefined;
    // Compact once the settled prefix dominates, so the array does not grow with the number of frames sent.
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
    return p;
  }

  private rejectAll(err: Error): void {
    while (this.queued() > 0) this.settleHead()?.reject(err);
  }

  async close(): Promise<void> {
    this.running = false;
    const notifierClosed = this.notifier.close();
    // The region may be unmapped right after close(): nothing may touch it once this resolves.
    await this.loopDone;
    await this.pumpDone;
    await notifierClosed;
  }
}
