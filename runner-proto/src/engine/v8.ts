/**
 * The default engine: V8's WebAssembly with our WASI host, in worker threads.
 *
 * - Compiled modules are kept per digest; a `WebAssembly.Module` posted to a worker shares its compiled code.
 * - Variants: a memory page limit is a rewritten memory maximum (memory-limit.ts) and gas is an instrumented
 *   copy (gas.ts); each variant is compiled once per (digest, pages, gas) and cached.
 * - One worker runs one thing at a time: a command's `_start`, or one reactor instance's calls. Time limits and
 *   kills use `worker.terminate()`, which interrupts wasm mid-loop, so nothing else may share that thread.
 * - Generic pool: `poolSize` idle workers are spawned ahead (a spawn costs tens of milliseconds). A worker goes
 *   back to the pool only when its instance ended by itself (exit, trap, load, output limit), since its state is
 *   then provably unwound; after a timeout, kill or crash it is terminated and replaced.
 * - Warm pools (`prewarm`): workers dedicated to one variant that keep `instancesPerWorker` instances
 *   instantiated ahead, so a run only configures argv/env and calls `_start` (stats.start = 'warm'), and
 *   `instantiate()` only runs `_initialize`. A warm worker taken by a reactor leaves the pool and is replaced.
 *   A pool that shrinks (scale to zero, forget) unloads its idle workers and keeps up to MAX_SPARE_WORKERS of
 *   them for the next pool or run, so modules that cool while others warm trade workers instead of spawning.
 * - Reactor calls go through a SharedArrayBuffer queue per worker (call-queue.ts), not postMessage.
 */
import { performance } from 'node:perf_hooks';

import { AgentError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { type WasmModule, wasmApi } from '../wasi/index.js';
import { DEFAULT_QUEUE_WORDS } from './call-queue.js';
import { instrumentGas } from './gas.js';
import { limitMemoryPages } from './memory-limit.js';
import { DEFAULT_RING_BYTES } from './output-ring.js';
import {
  type CompiledModule,
  type Engine,
  type ReactorInstance,
  type RunEvents,
  type RunLimits,
  type RunningInstance,
  type RunRequest,
} from './types.js';
import { type HandleOptions, WorkerHandle, type WorkerOwner } from './v8-handle.js';
import { type CallableExport, callableExports, type ReactorHost, V8Reactor } from './v8-reactor.js';
import { describe, type Launch, type RunHost, runSpecOf, V8Run } from './v8-run.js';
import { exportedFunctions, summarize } from './wasm-binary.js';
import type { ExportSpec, Outcome, WorkerMessage } from './worker-protocol.js';

/** wasm32 cannot address more than 65536 pages, so a limit at or above it changes nothing. */
const WASM32_MAX_PAGES = 65536;

/**
 * Workers a shrinking warm pool hands back for the next pool (or run) instead of terminating them, and how long
 * they wait. Spawning a worker costs tens of milliseconds of CPU and terminating one a few more; a runner that
 * receives module after module (each warmed, the least recent cooled) would otherwise pay both per module, on
 * the same two cores that receive and compile the next one.
 */
const MAX_SPARE_WORKERS = 2;
/**
 * Modules up to this size compile synchronously. V8's async compile runs on background threads and resolves on
 * a later turn of the loop: for a 150 KiB module (26 KiB of code) it took 1.4-2.0 ms against 1.0-1.2 ms sync on
 * this 2-vCPU machine, the hops costing more than the event loop is held. Bigger modules hold it too long.
 */
const SYNC_COMPILE_MAX_BYTES = 256 * 1024;
const SPARE_IDLE_MS = 5000;

export interface V8EngineOptions {
  /** Idle generic workers kept ready; 0 spawns one per run. Default 2. */
  readonly poolSize?: number;
  readonly logger?: Logger;
  /** Worker script; defaults to the compiled v8-worker.js next to this file. */
  readonly workerUrl?: URL;
  /** Bytes of the per-worker output ring (power of two). */
  readonly ringBytes?: number;
  /** Native stack per worker; bounds how deep wasm recursion gets before it traps. Default 4 MiB. */
  readonly stackSizeMb?: number;
  /**
   * How long after proc_exit or an output-limit hit the module may keep running before it is stopped from
   * outside (it can only keep running by catching our sentinel with wasm exception handling). Default 1000 ms.
   */
  readonly endingGraceMs?: number;
  /** Instances each warm-pool worker keeps instantiated ahead (see `prewarm`). Default 1. */
  readonly instancesPerWorker?: number;
  /**
   * Polls of the request counter an idle worker makes before it blocks in Atomics.wait. Polling answers a
   * caller's next call without a futex wake (tens of microseconds) at the price of a little CPU after each
   * burst. Default 2000 (roughly 10–40 µs).
   */
  readonly spinIterations?: number;
  /** 8-byte words per direction in each worker's call queue (power of two). Default 8192. */
  readonly queueWords?: number;
}

interface Variant {
  readonly key: string;
  readonly module: Promise<WasmModule | string>;
  readonly gas: boolean;
  pool: WarmPool | undefined;
}

interface CompiledEntry {
  readonly digest: string;
  readonly module: WasmModule;
  readonly bytes: Uint8Array;
  readonly kind: CompiledModule['kind'];
  /** Callable exports, or why their signatures could not be read. */
  readonly exports: { specs: ExportSpec[]; byName: Map<string, CallableExport | string> } | string;
  /** A wasm start function runs at instantiation, so instances cannot be created before the run's argv is known. */
  readonly hasStartFunction: boolean;
  readonly variants: Map<string, Variant>;
}

interface ReadyWaiter {
  readonly resolve: (ready: number) => void;
  readonly reject: (err: Error) => void;
}

/** Workers dedicated to one variant, each keeping `keep` instances ready. */
class WarmPool {
  target = 0;
  keep: number;
  readonly workers = new Set<WorkerHandle>();
  waiters: ReadyWaiter[] = [];
  failure: string | undefined;

  constructor(
    readonly variant: Variant,
    keep: number,
  ) {
    this.keep = keep;
  }

  /** Workers this pool should have. */
  wanted(): number {
    return this.target <= 0 ? 0 : Math.ceil(this.target / Math.max(1, this.keep));
  }

  readyInstances(): number {
    let n = 0;
    for (const h of this.workers) if (!h.dead && h.owner === undefined) n += h.loaded.get(this.variant.key) ?? 0;
    return n;
  }

  /** Every wanted worker has loaded the module and filled its instances. */
  isReady(): boolean {
    let acked = 0;
    for (const h of this.workers) if (!h.dead && h.loaded.has(this.variant.key)) acked++;
    return acked >= this.wanted() && this.readyInstances() >= Math.min(this.target, this.wanted() * this.keep);
  }

  settle(): void {
    if (this.failure !== undefined) {
      const err = new AgentError('AGT_ERR_RUN_LOAD', `cannot prewarm ${this.variant.key}: ${this.failure}`);
      for (const w of this.waiters.splice(0)) w.reject(err);
    } else if (this.isReady()) {
      const ready = this.readyInstances();
      for (const w of this.waiters.splice(0)) w.resolve(ready);
    }
  }
}

function kindOf(module: WasmModule): CompiledModule['kind'] {
  const functions = new Set(
    wasmApi()
      .Module.exports(module)
      .filter((e) => e.kind === 'function')
      .map((e) => e.name),
  );
  if (functions.has('_start')) return 'command';
  if (functions.has('_initialize')) return 'reactor';
  return 'library';
}

export class V8Engine implements Engine {
  readonly name = 'v8';
  readonly endingGraceMs: number;
  readonly log: Logger;

  private readonly modules = new Map<string, CompiledEntry>();
  private readonly idle: WorkerHandle[] = [];
  /** Unloaded workers retired by a warm pool, reused before spawning (see MAX_SPARE_WORKERS). */
  private readonly spare: WorkerHandle[] = [];
  private spareTimer: NodeJS.Timeout | undefined;
  private readonly all = new Set<WorkerHandle>();
  private readonly runs = new Set<V8Run>();
  private readonly reactors = new Set<V8Reactor>();
  private readonly pools = new Map<string, WarmPool>();
  private readonly poolSize: number;
  private readonly instancesPerWorker: number;
  private readonly handleOptions: HandleOptions;
  private readonly runHost: RunHost;
  private readonly reactorHost: ReactorHost;
  private warmed = false;
  private closed = false;

  constructor(options: V8EngineOptions = {}) {
    wasmApi(); // fail at construction, with a clear message, under --jitless
    this.poolSize = Math.max(0, options.poolSize ?? 2);
    this.instancesPerWorker = Math.max(1, Math.floor(options.instancesPerWorker ?? 1));
    this.handleOptions = {
      workerUrl: options.workerUrl ?? new URL('./v8-worker.js', import.meta.url),
      ringBytes: options.ringBytes ?? DEFAULT_RING_BYTES,
      stackSizeMb: options.stackSizeMb ?? 4,
      spin: Math.max(0, Math.floor(options.spinIterations ?? 2000)),
      queueWords: options.queueWords ?? DEFAULT_QUEUE_WORDS,
    };
    this.endingGraceMs = options.endingGraceMs ?? 1000;
    this.log = options.logger ?? createLogger('engine');
    this.runHost = {
      endingGraceMs: this.endingGraceMs,
      acquire: (owner, key) => this.acquire(owner, key),
      release: (handle, reusable) => this.release(handle, reusable),
      destroy: (handle) => this.destroy(handle),
      warnListener: this.warnListener,
    };
    this.reactorHost = {
      endingGraceMs: this.endingGraceMs,
      destroy: (handle) => this.destroy(handle),
      forgetReactor: (reactor) => void this.reactors.delete(reactor),
      warnListener: this.warnListener,
    };
  }

  async compile(digest: string, bytes: Uint8Array): Promise<CompiledModule> {
    if (this.closed) throw new AgentError('AGT_ERR_RUN_LOAD', 'the engine is closed', { digest });
    const known = this.modules.get(digest);
    if (known !== undefined) return { digest, kind: known.kind };
    // Copied: the caller may reuse its buffer, and variants are rewritten from these bytes later.
    const copy = bytes.slice();
    let module: WasmModule;
    try {
      module = copy.length <= SYNC_COMPILE_MAX_BYTES ? new (wasmApi().Module)(copy) : await wasmApi().compile(copy);
    } catch (err) {
      throw new AgentError('AGT_ERR_RUN_LOAD', `module ${digest} does not compile: ${describe(err)}`, { digest }, { cause: err });
    }
    let exports: CompiledEntry['exports'];
    let hasStartFunction = false;
    try {
      const summary = summarize(copy);
      hasStartFunction = summary.hasStartSection;
      exports = callableExports(exportedFunctions(summary));
    } catch (err) {
      exports = `cannot read the export signatures: ${describe(err)}`;
    }
    const entry: CompiledEntry = { digest, module, bytes: copy, kind: kindOf(module), exports, hasStartFunction, variants: new Map() };
    this.modules.set(digest, entry);
    this.warm();
    return { digest, kind: entry.kind };
  }

  run(module: CompiledModule, request: RunRequest, events: RunEvents): RunningInstance {
    const run = new V8Run(this.runHost, request, events);
    this.runs.add(run);
    void run.result.finally(() => this.runs.delete(run));
    const entry = this.modules.get(module.digest);
    if (this.closed) run.fail('the engine is closed');
    else if (entry === undefined) run.fail(`module ${module.digest} is not compiled (or was forgotten)`);
    else if (entry.kind !== 'command') run.fail(`module ${module.digest} is a ${entry.kind}: it has no _start to run`);
    else {
      const variant = this.variantFor(entry, request.limits);
      const gas = gasOf(request.limits);
      run.begin(variant.module.then((m): Launch | string => (typeof m === 'string' ? m : { key: variant.key, module: m, gas })));
    }
    return { result: run.result, kill: (graceMs?: number) => run.kill(graceMs ?? 0), resume: () => run.resume() };
  }

  async instantiate(module: CompiledModule, request: RunRequest, events: RunEvents): Promise<ReactorInstance> {
    const entry = this.modules.get(module.digest);
    const loadError = (message: string): AgentError => new AgentError('AGT_ERR_RUN_LOAD', message, { digest: module.digest });
    if (this.closed) throw loadError('the engine is closed');
    if (entry === undefined) throw loadError(`module ${module.digest} is not compiled (or was forgotten)`);
    if (typeof entry.exports === 'string') throw loadError(`module ${module.digest}: ${entry.exports}`);
    const variant = this.variantFor(entry, request.limits);
    const compiled = await variant.module;
    if (typeof compiled === 'string') throw loadError(`module ${module.digest}: ${compiled}`);
    if (this.closed) throw loadError('the engine is closed');
    const requestedAt = performance.timeOrigin + performance.now();
    let reactor: V8Reactor | undefined;
    const owner: WorkerOwner = {
      onMessage: (msg: WorkerMessage) => reactor?.onMessage(msg),
      onError: (err: Error) => reactor?.onError(err),
      onExit: (code: number) => reactor?.onExit(code),
    };
    const { handle, holdsModule } = this.acquire(owner, variant.key, true);
    reactor = new V8Reactor(this.reactorHost, handle, { exports: entry.exports.byName, instrumented: variant.gas, limits: request.limits }, events);
    handle.owner = reactor;
    this.reactors.add(reactor);
    handle.send({
      type: 'instantiate',
      key: variant.key,
      module: holdsModule ? undefined : compiled,
      run: runSpecOf(request, false),
      gas: gasOf(request.limits),
      requestedAt,
      exports: entry.exports.specs,
    });
    handle.ref();
    const timeMs = request.limits?.timeMs;
    if (timeMs !== undefined && timeMs > 0) reactor.limitInitialize(timeMs);
    try {
      await reactor.ready;
    } catch (err) {
      const outcome = err as Outcome;
      throw loadError(`module ${module.digest} could not be instantiated: ${outcome.reason}${outcome.message !== undefined ? `: ${outcome.message}` : ''}`);
    } finally {
      handle.resetRefs();
    }
    return reactor;
  }

  /**
   * Keeps `count` instances of a module (in the variant `limits` selects: memory pages, gas on/off) instantiated
   * ahead, on `ceil(count / instancesPerWorker)` dedicated workers; 0 releases them (scale to zero). Resolves
   * with the number of ready instances once they are all ready; rejects with AGT_ERR_RUN_LOAD if the module
   * cannot be instantiated. Modules with a wasm start function are only loaded ahead (their start function must
   * see the run's argv), so their runs stay 'cold'.
   */
  async prewarm(module: CompiledModule, count: number, limits?: Pick<RunLimits, 'memoryPages' | 'gas'>): Promise<number> {
    const entry = this.modules.get(module.digest);
    if (this.closed) throw new AgentError('AGT_ERR_RUN_LOAD', 'the engine is closed', { digest: module.digest });
    if (entry === undefined) throw new AgentError('AGT_ERR_RUN_LOAD', `module ${module.digest} is not compiled (or was forgotten)`, { digest: module.digest });
    const variant = this.variantFor(entry, limits);
    const compiled = await variant.module;
    if (typeof compiled === 'string') throw new AgentError('AGT_ERR_RUN_LOAD', `module ${module.digest}: ${compiled}`, { digest: module.digest });
    let pool = variant.pool;
    if (pool === undefined) {
      pool = new WarmPool(variant, entry.hasStartFunction ? 0 : this.instancesPerWorker);
      variant.pool = pool;
      this.pools.set(variant.key, pool);
    }
    pool.target = Math.max(0, Math.floor(count));
    pool.failure = undefined;
    this.balance(pool, compiled);
    const ready = new Promise<number>((resolve, reject) => pool.waiters.push({ resolve, reject }));
    pool.settle();
    return ready;
  }

  /** Instances ready in a module's warm pool (for the variant `limits` selects). */
  warmInstances(module: CompiledModule, limits?: Pick<RunLimits, 'memoryPages' | 'gas'>): number {
    const entry = this.modules.get(module.digest);
    if (entry === undefined) return 0;
    return this.variantFor(entry, limits).pool?.readyInstances() ?? 0;
  }

  forget(digest: string): void {
    // Running instances hold their own reference to the module; only future runs are affected.
    const entry = this.modules.get(digest);
    this.modules.delete(digest);
    if (entry === undefined) return;
    for (const variant of entry.variants.values()) {
      const pool = variant.pool;
      if (pool === undefined) continue;
      pool.target = 0;
      pool.failure = 'the module was forgotten';
      pool.settle();
      this.pools.delete(variant.key);
      for (const h of [...pool.workers]) if (h.owner === undefined) this.recycle(h);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.runs].map((run) => {
      run.kill(0);
      return run.result;
    });
    await Promise.allSettled([...pending, ...[...this.reactors].map((r) => r.close())]);
    for (const pool of this.pools.values()) {
      pool.target = 0;
      pool.failure = 'the engine is closed';
      pool.settle();
    }
    const workers = [...this.all];
    this.idle.length = 0;
    this.spare.length = 0;
    if (this.spareTimer !== undefined) clearTimeout(this.spareTimer);
    await Promise.allSettled(workers.map((w) => this.destroy(w)));
  }

  // ---- variants ---------------------------------------------------------------------------------------------

  /** The variant for a page limit and gas on/off: compiled once, cached. */
  private variantFor(entry: CompiledEntry, limits: Pick<RunLimits, 'memoryPages' | 'gas'> | undefined): Variant {
    const raw = limits?.memoryPages;
    const pages = raw === undefined || raw <= 0 || raw >= WASM32_MAX_PAGES ? 0 : Math.floor(raw);
    const gas = gasOf(limits) !== undefined;
    const key = `${entry.digest}#pages=${pages}#gas=${gas ? 1 : 0}`;
    let variant = entry.variants.get(key);
    if (variant === undefined) {
      variant = { key, module: this.buildVariant(entry, pages, gas), gas, pool: undefined };
      entry.variants.set(key, variant);
    }
    return variant;
  }

  private async buildVariant(entry: CompiledEntry, pages: number, gas: boolean): Promise<WasmModule | string> {
    let bytes = entry.bytes;
    let changed = false;
    if (pages > 0) {
      const limited = limitMemoryPages(bytes, pages);
      if (!limited.ok) return limited.message;
      bytes = limited.bytes;
      changed = limited.changed;
    }
    if (gas) {
      try {
        bytes = instrumentGas(bytes).bytes;
        changed = true;
      } catch (err) {
        return `cannot instrument the module for gas: ${describe(err)}`;
      }
    }
    if (!changed) return entry.module;
    try {
      return await wasmApi().compile(bytes);
    } catch (err) {
      return `${gas ? 'gas-instrumented' : 'memory-limited'} variant does not compile: ${describe(err)}`;
    }
  }

  // ---- workers ----------------------------------------------------------------------------------------------

  private readonly handleEvents = {
    onPoolMessage: (handle: WorkerHandle, msg: Extract<WorkerMessage, { type: 'ready' | 'load-failed' }>): void => {
      const pool = handle.poolKey === undefined ? undefined : this.pools.get(handle.poolKey);
      if (msg.type === 'ready') {
        // A recycled worker may still report the key it held before it was unloaded: not its pool's any more.
        if (msg.key !== handle.poolKey) return;
        handle.loaded.set(msg.key, msg.count);
        if (pool !== undefined && handle.owner === undefined && msg.count >= pool.keep) handle.resetRefs();
        pool?.settle();
      } else if (pool !== undefined && pool.variant.key === msg.key) {
        // The variant cannot be instantiated: stop trying, and fail whoever waits for it.
        handle.resetRefs();
        pool.failure = msg.message;
        pool.target = 0;
        pool.settle();
        for (const h of [...pool.workers]) if (h.owner === undefined) void this.destroy(h);
      }
    },
    onOrphan: (_handle: WorkerHandle, what: string, err?: Error): void => this.log.warn({ err }, what),
    onExit: (handle: WorkerHandle): void => {
      this.all.delete(handle);
      this.unlist(handle);
      this.leavePool(handle);
    },
  };

  private warm(): void {
    if (this.warmed || this.closed) return;
    this.warmed = true;
    while (this.idle.length < this.poolSize) this.idle.push(this.spawn());
  }

  private spawn(): WorkerHandle {
    const handle = new WorkerHandle(this.handleOptions, this.handleEvents);
    this.all.add(handle);
    return handle;
  }

  /** Spawns or retires dedicated workers until the pool has the number it wants. */
  private balance(pool: WarmPool, module: WasmModule): void {
    if (this.closed) return;
    for (const h of pool.workers) if (h.dead) pool.workers.delete(h);
    const wanted = pool.wanted();
    while (pool.workers.size < wanted) {
      const handle = this.spare.pop() ?? this.spawn();
      handle.poolKey = pool.variant.key;
      pool.workers.add(handle);
      handle.send({ type: 'load', key: pool.variant.key, module, keep: pool.keep });
      // Keeps the process alive until the worker's instances are ready (prewarm() is awaited on that).
      handle.ref();
    }
    if (pool.workers.size > wanted) {
      for (const h of [...pool.workers]) {
        if (pool.workers.size <= wanted) break;
        if (h.owner === undefined) this.recycle(h);
      }
    }
  }

  private leavePool(handle: WorkerHandle): void {
    const key = handle.poolKey;
    if (key === undefined) return;
    handle.poolKey = undefined;
    const pool = this.pools.get(key);
    if (pool === undefined || !pool.workers.delete(handle)) return;
    // Replaced in the background, so the pool stays at its size after a timeout, a kill or a reactor taking it.
    if (!this.closed && pool.workers.size < pool.wanted()) {
      setImmediate(() => {
        if (this.closed || this.pools.get(key) !== pool) return;
        void pool.variant.module.then((m) => {
          if (typeof m !== 'string') this.balance(pool, m);
        });
      });
    }
  }

  /**
   * Hands a worker to an owner: an idle one from the variant's warm pool (preferring one with an instance
   * ready), else a generic idle one, else a fresh spawn. `holdsModule` says the worker already has the module.
   */
  private acquire(owner: WorkerOwner, key: string, forReactor = false): { handle: WorkerHandle; holdsModule: boolean } {
    const pool = this.pools.get(key);
    let handle: WorkerHandle | undefined;
    if (pool !== undefined) {
      let fallback: WorkerHandle | undefined;
      for (const h of pool.workers) {
        if (h.dead || h.owner !== undefined || !h.loaded.has(key)) continue;
        if ((h.loaded.get(key) ?? 0) > 0) {
          handle = h;
          break;
        }
        fallback ??= h;
      }
      handle ??= fallback;
    }
    const holdsModule = handle !== undefined;
    if (handle !== undefined) {
      // The worker does not report taking an instance (that would cost a message on the hot path).
      const ready = handle.loaded.get(key) ?? 0;
      if (ready > 0) handle.loaded.set(key, ready - 1);
    }
    handle ??= this.idle.pop() ?? this.spare.pop() ?? this.spawn();
    handle.owner = owner;
    handle.ring.reset();
    handle.resetRefs();
    handle.ref();
    // A reactor keeps its worker for good: it leaves the pool, which spawns a replacement.
    if (forReactor) this.leavePool(handle);
    return { handle, holdsModule };
  }

  /**
   * A worker whose instance ended by itself goes back where it came from (its warm pool, or the generic pool);
   * any other is terminated and, if the generic pool is short, replaced in the background. Refilling on release
   * rather than on acquire keeps a steady stream of runs on the same few workers instead of spawning one per run.
   */
  private release(handle: WorkerHandle, reusable: boolean): void {
    handle.owner = undefined;
    handle.resetRefs();
    if (handle.poolKey !== undefined) {
      // A warm worker stays in its pool unless the pool shrank or went away (forget, scale to zero).
      const pool = this.pools.get(handle.poolKey);
      if (pool !== undefined && reusable && !handle.dead && !this.closed && pool.workers.size <= pool.wanted()) return;
      if (reusable) this.recycle(handle);
      else void this.destroy(handle);
      return;
    }
    if (reusable && !handle.dead && !this.closed && this.idle.length < this.poolSize) {
      this.idle.push(handle);
      return;
    }
    void this.destroy(handle);
    if (!this.closed && this.idle.length < this.poolSize) {
      setImmediate(() => {
        if (!this.closed && this.idle.length < this.poolSize) this.idle.push(this.spawn());
      });
    }
  }

  /**
   * Retires an idle warm worker: its instances are dropped (unload) and it waits as a spare for the next pool
   * or run, so a module that cools and another that warms cost one message rather than a terminate and a spawn.
   */
  private recycle(handle: WorkerHandle): void {
    if (handle.dead || handle.owner !== undefined || this.closed || this.spare.length >= MAX_SPARE_WORKERS) {
      void this.destroy(handle);
      return;
    }
    // The pool's own key too: the worker may not have reported its load yet.
    const keys = new Set(handle.loaded.keys());
    if (handle.poolKey !== undefined) keys.add(handle.poolKey);
    this.leavePool(handle);
    for (const key of keys) handle.send({ type: 'unload', key });
    handle.loaded.clear();
    handle.resetRefs();
    this.spare.push(handle);
    if (this.spareTimer !== undefined) clearTimeout(this.spareTimer);
    this.spareTimer = setTimeout(() => {
      this.spareTimer = undefined;
      for (const h of this.spare.splice(0)) void this.destroy(h);
    }, SPARE_IDLE_MS);
    this.spareTimer.unref();
  }

  private unlist(handle: WorkerHandle): void {
    const at = this.idle.indexOf(handle);
    if (at >= 0) this.idle.splice(at, 1);
    const s = this.spare.indexOf(handle);
    if (s >= 0) this.spare.splice(s, 1);
  }

  private async destroy(handle: WorkerHandle): Promise<void> {
    this.all.delete(handle);
    this.unlist(handle);
    this.leavePool(handle);
    if (handle.dead) return;
    try {
      await handle.terminate();
    } catch (err) {
      this.log.warn({ err }, 'engine worker did not terminate cleanly');
    }
  }

  private readonly warnListener = (err: unknown): void => this.log.warn({ err }, 'an output listener threw; output continues');
}

function gasOf(limits: Pick<RunLimits, 'gas'> | undefined): number | undefined {
  const gas = limits?.gas;
  return gas !== undefined && gas > 0 ? gas : undefined;
}
