import { AgentError } from '../errors/index.js';
import type { CompiledModule, Engine, ReactorInstance, RunEvents, RunRequest } from '../engine/index.js';
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
