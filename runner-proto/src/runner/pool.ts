import { AgentError } from '../errors/index.js';
import type { CallResult, CompiledModule, Engine, ReactorCall, ReactorInstance, RunEvents, RunRequest } from '../engine/index.js';
import type { Logger } from '../log/index.js';
import type { PoolConfig } from '../protocol/index.js';

interface Slot {
  readonly instance: ReactorInstance;
  /** Calls queued on this instance right now (an instance runs them one after another). */
  inFlight: number;
  lastUsed: number;
}

/** How many calls may queue on one instance before another instance is started (up to max). */
const PER_INSTANCE_QUEUE = 64;
const ACQUIRE_TIMEOUT_MS = 30_000;
/** Queue depth on the least-busy instance at which the pool starts another one (below max). */
const GROW_AT = 4;

/** Where the calls of a callBatch settle: each exactly once, with its index in the batch. */
export interface BatchSink {
  done(index: number, result: CallResult, start: 'cold' | 'warm'): void;
  /** The call could not be made (no instance could be had); `use` would have thrown `err`. */
  failed(index: number, err: unknown): void;
}

/**
 * Warm reactor instances of one app version. Calls go to the least-busy live instance; a new instance is
 * started when all are busy and the pool is below max (a cold start), else the call waits (bounded). Dead
 * instances (trap, timeout, gas) are replaced in the background up to `min`; idle instances above `min` are
 * closed after `idleMs` (scale to zero when min is 0).
 */
export class InstancePool {
  private readonly engine: Engine;
  private readonly module: CompiledModule;
  private readonly request: RunRequest;
  private readonly config: PoolConfig;
  private readonly logger: Logger;
  private readonly events: RunEvents;
  private readonly slots: Slot[] = [];
  private starting = 0;
  private readonly waiters: Array<() => void> = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  coldStarts = 0;
  warmStarts = 0;

  constructor(options: { engine: Engine; module: CompiledModule; request: RunRequest; config: PoolConfig; logger: Logger; events: RunEvents }) {
    this.engine = options.engine;
    this.module = options.module;
    this.request = options.request;
    this.config = options.config;
    this.logger = options.logger;
    this.events = options.events;
    this.idleTimer = setInterval(() => this.trimIdle(), Math.min(1000, Math.max(50, this.config.idleMs / 4)));
    this.idleTimer.unref();
  }

  get size(): number {
    return this.slots.length;
  }

  get idle(): number {
    return this.slots.filter((s) => s.inFlight === 0).length;
  }

  /** Starts `min` instances (at least one when `atLeastOne`, to prove the version works before the switch). */
  async prewarm(atLeastOne: boolean): Promise<number> {
    const want = Math.max(this.config.min, atLeastOne ? 1 : 0);
    const started = await Promise.all(Array.from({ length: Math.max(0, want - this.slots.length) }, () => this.startOne()));
    return started.length;
  }

  private async startOne(): Promise<Slot> {
    this.starting++;
    try {
      const instance = await this.engine.instantiate(this.module, this.request, this.events);
      if (this.closed) {
        await instance.close();
        throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'pool closed while starting an instance');
      }
      const slot: Slot = { instance, inFlight: 0, lastUsed: Date.now() };
      this.slots.push(slot);
      this.wakeOne();
      return slot;
    } finally {
      this.starting--;
    }
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }

  private pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (!s.instance.alive || s.inFlight >= PER_INSTANCE_QUEUE) continue;
      if (!best || s.inFlight < best.inFlight) best = s;
    }
    return best;
  }

  /** Runs `fn` on an instance; reports whether the call had to wait for a new instance (cold). */
  async use<T>(fn: (instance: ReactorInstance) => Promise<T>): Promise<{ value: T; start: 'cold' | 'warm' }> {
    if (this.closed) throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'app version is no longer serving');
    let start: 'cold' | 'warm' = 'warm';
    let slot = this.pick();
    // Short calls queue on a busy instance (it drains its queue without sleeping); a deeper queue starts another.
    if (!slot || (slot.inFlight >= GROW_AT && this.slots.length + this.starting < this.config.max)) {
      if (this.slots.length + this.starting < this.config.max) {
        start = 'cold';
        slot = await this.startOne();
      } else if (!slot) {
        slot = await this.waitForSlot();
      }
    }
    if (start === 'cold') this.coldStarts++;
    else this.warmStarts++;
    slot.inFlight++;
    slot.lastUsed = Date.now();
    try {
      return { value: await fn(slot.instance), start };
    } finally {
      slot.inFlight--;
      if (!slot.instance.alive) this.drop(slot);
      this.wakeOne();
    }
  }

  /**
   * Many calls, placed exactly as `use` would place them one after another (least-busy live instance; a cold
   * start when every instance is busy and the pool may grow; else wait for room), but each instance gets its
   * share in one callMany, and calls that must wait wait together. Never throws: every call settles in `sink`.
   */
  callBatch(calls: readonly ReactorCall[], sink: BatchSink): void {
    const waiting: number[] = [];
    const groups = new Map<Slot, number[]>();
    for (let i = 0; i < calls.length; i++) {
      if (this.closed) {
        sink.failed(i, new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'app version is no longer serving'));
        continue;
      }
      // Calls that arrived earlier and wait keep their turn: a later call does not take room ahead of them.
      if (waiting.length > 0) {
        waiting.push(i);
        continue;
      }
      const slot = this.pick();
      if (slot && !(slot.inFlight >= GROW_AT && this.slots.length + this.starting < this.config.max)) {
        this.take(slot, groups, i);
      } else if (this.slots.length + this.starting < this.config.max) {
        // A cold start serves this one call, as in `use` (its instance is not ready yet to share a hand-off).
        const c = calls[i] as ReactorCall;
        this.use((inst) => inst.call(c.fn, c.args, c.limits)).then(
          ({ value, start }) => sink.done(i, value, start),
          (err: unknown) => sink.failed(i, err),
        );
      } else {
        waiting.push(i);
      }
    }
    for (const [slot, indices] of groups) this.dispatch(slot, calls, indices, sink);
    if (waiting.length > 0) this.waitBatch(calls, waiting, sink);
  }

  private take(slot: Slot, groups: Map<Slot, number[]>, index: number): void {
    this.warmStarts++;
    slot.inFlight++;
    slot.lastUsed = Date.now();
    const g = groups.get(slot);
    if (g) g.push(index);
    else groups.set(slot, [index]);
  }

  /** Hands one instance its calls; results come back per call, the slot is released in one step per turn. */
  private dispatch(slot: Slot, calls: readonly ReactorCall[], indices: readonly number[], sink: BatchSink): void {
    const inst = slot.instance;
    const mine = indices.length === calls.length ? calls : indices.map((i) => calls[i] as ReactorCall);
    if (!inst.callMany) {
      mine.forEach((c, k) => {
        inst.call(c.fn, c.args, c.limits).then(
          (r) => {
            this.release(slot, 1);
            sink.done(indices[k] as number, r, 'warm');
          },
          (err: unknown) => {
            this.release(slot, 1);
            sink.failed(indices[k] as number, err);
          },
        );
      });
      return;
    }
    // Results may arrive inside the instance's harvest, where nothing may call back into it: the slot is
    // released (and waiting calls dispatched, a dead instance dropped) from a microtask, once per turn.
    let finished = 0;
    const flush = (): void => {
      const n = finished;
      finished = 0;
      this.release(slot, n);
    };
    inst.callMany(mine, (k, r) => {
      if (finished++ === 0) queueMicrotask(flush);
      sink.done(indices[k] as number, r, 'warm');
    });
  }

  /** `n` calls on `slot` ended: as `use` does after each, drop the instance if it died and let waiters in. */
  private release(slot: Slot, n: number): void {
    slot.inFlight -= n;
    if (!slot.instance.alive) this.drop(slot);
    // Wake only while there is room: a batch waiter takes all the room there is in one go.
    for (let k = 0; k < n && this.waiters.length > 0; k++) {
      if (!this.pick()) break;
      this.wakeOne();
    }
  }

  /** The calls of a batch that found no room wait together, in order, with the same deadline as `use`. */
  private waitBatch(calls: readonly ReactorCall[], waiting: number[], sink: BatchSink): void {
    const deadline = Date.now() + ACQUIRE_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let next = 0;
    const attempt = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const groups = new Map<Slot, number[]>();
      for (let s = this.pick(); s && next < waiting.length; s = this.pick()) this.take(s, groups, waiting[next++] as number);
      for (const [slot, indices] of groups) this.dispatch(slot, calls, indices, sink);
      if (next === waiting.length) return;
      const fail = this.closed
        ? new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'app version stopped while the call waited')
        : Date.now() > deadline
          ? new AgentError('AGT_ERR_TIMEOUT', `no instance free within ${ACQUIRE_TIMEOUT_MS} ms (pool max ${this.config.max})`)
          : undefined;
      if (fail) {
        while (next < waiting.length) sink.failed(waiting[next++] as number, fail);
        return;
      }
      this.waiters.push(attempt);
      timer = setTimeout(() => {
        const i = this.waiters.indexOf(attempt);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          attempt();
        }
      }, 100);
      timer.unref();
    };
    attempt();
  }

  private waitForSlot(): Promise<Slot> {
    return new Promise<Slot>((resolve, reject) => {
      const deadline = Date.now() + ACQUIRE_TIMEOUT_MS;
      const attempt = (): void => {
        const s = this.pick();
        if (s) return resolve(s);
        if (this.closed) return reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'app version stopped while the call waited'));
        if (Date.now() > deadline) return reject(new AgentError('AGT_ERR_TIMEOUT', `no instance free within ${ACQUIRE_TIMEOUT_MS} ms (pool max ${this.config.max})`));
        this.waiters.push(attempt);
        setTimeout(() => {
          const i = this.waiters.indexOf(attempt);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            attempt();
          }
        }, 100).unref();
      };
      attempt();
    });
  }

  private drop(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    void slot.instance.close().catch(() => undefined);
    // Keep the floor of warm instances after a trap or timeout ended one.
    if (!this.closed && this.slots.length + this.starting < this.config.min) {
      this.startOne().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'could not replace a pool instance'));
    }
  }

  private trimIdle(): void {
    const now = Date.now();
    for (const s of [...this.slots]) {
      if (this.slots.length <= this.config.min) break;
      if (s.inFlight === 0 && now - s.lastUsed >= this.config.idleMs) this.drop(s);
    }
  }

  /** Waits until no call is in flight (bounded), then closes every instance. */
  async drain(timeoutMs = 30_000): Promise<void> {
    this.closed = true;
    const deadline = Date.now() + timeoutMs;
    while (this.slots.some((s) => s.inFlight > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await this.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    const slots = this.slots.splice(0);
    for (const w of this.waiters.splice(0)) w();
    await Promise.allSettled(slots.map((s) => s.instance.close()));
  }
}
