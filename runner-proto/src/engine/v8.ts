/**
 * The default engine: V8's WebAssembly with our WASI host, one worker thread per running instance.
 *
 * - Compiled modules are kept per digest; the `WebAssembly.Module` is posted to a worker for each run (modules
 *   clone to workers without recompiling).
 * - Workers are pooled: a few idle ones are spawned ahead (a spawn costs tens of milliseconds). A worker goes back
 *   to the pool only when the instance ended by itself (exit, trap, load, output limit), since its run state is
 *   then provably unwound; after a timeout, kill or crash it is terminated and replaced.
 * - Time limits and kills use `worker.terminate()`, which interrupts wasm mid-loop.
 * - The memory page limit is a rewritten memory maximum (memory-limit.ts); variants are cached per page count.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

import { AgentError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { type WasmModule, wasmApi } from '../wasi/index.js';
import { limitMemoryPages } from './memory-limit.js';
import { createOutputRing, DEFAULT_RING_BYTES, RingReader } from './output-ring.js';
import {
  type CompiledModule,
  type Engine,
  EXIT_CODE_ABORT,
  EXIT_CODE_LOAD,
  type RunEvents,
  type RunningInstance,
  type RunRequest,
  type RunResult,
} from './types.js';
import type { Outcome, RunMessage, WorkerData, WorkerMessage } from './worker-protocol.js';

/** wasm32 cannot address more than 65536 pages, so a limit at or above it changes nothing. */
const WASM32_MAX_PAGES = 65536;

export interface V8EngineOptions {
  /** Idle workers kept ready; 0 spawns one per run. Default 2. */
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
}

interface CompiledEntry {
  readonly module: WasmModule;
  readonly bytes: Uint8Array;
  readonly kind: CompiledModule['kind'];
  readonly variants: Map<number, Promise<WasmModule | string>>;
}

interface PooledWorker {
  readonly worker: Worker;
  readonly ring: RingReader;
  current: V8Run | undefined;
  dead: boolean;
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

/** Structured clone copies a view's whole backing buffer; a view into a large buffer is sliced first. */
function compact(bytes: Uint8Array | undefined): Uint8Array | undefined {
  if (bytes === undefined || bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return bytes.slice();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class V8Engine implements Engine {
  readonly name = 'v8';

  private readonly modules = new Map<string, CompiledEntry>();
  private readonly idle: PooledWorker[] = [];
  private readonly all = new Set<PooledWorker>();
  private readonly runs = new Set<V8Run>();
  private readonly poolSize: number;
  private readonly workerUrl: URL;
  private readonly ringBytes: number;
  private readonly stackSizeMb: number;
  readonly endingGraceMs: number;
  readonly log: Logger;
  private warmed = false;
  private closed = false;

  constructor(options: V8EngineOptions = {}) {
    wasmApi(); // fail at construction, with a clear message, under --jitless
    this.poolSize = Math.max(0, options.poolSize ?? 2);
    this.workerUrl = options.workerUrl ?? new URL('./v8-worker.js', import.meta.url);
    this.ringBytes = options.ringBytes ?? DEFAULT_RING_BYTES;
    this.stackSizeMb = options.stackSizeMb ?? 4;
    this.endingGraceMs = options.endingGraceMs ?? 1000;
    this.log = options.logger ?? createLogger('engine');
  }

  async compile(digest: string, bytes: Uint8Array): Promise<CompiledModule> {
    if (this.closed) throw new AgentError('AGT_ERR_RUN_LOAD', 'the engine is closed', { digest });
    const known = this.modules.get(digest);
    if (known !== undefined) return { digest, kind: known.kind };
    // Copied: the caller may reuse its buffer, and memory-limited variants are rewritten from these bytes later.
    const copy = bytes.slice();
    let module: WasmModule;
    try {
      module = await wasmApi().compile(copy);
    } catch (err) {
      throw new AgentError('AGT_ERR_RUN_LOAD', `module ${digest} does not compile: ${describe(err)}`, { digest }, { cause: err });
    }
    const entry: CompiledEntry = { module, bytes: copy, kind: kindOf(module), variants: new Map() };
    this.modules.set(digest, entry);
    this.warm();
    return { digest, kind: entry.kind };
  }

  run(module: CompiledModule, request: RunRequest, events: RunEvents): RunningInstance {
    const run = new V8Run(this, request, events);
    this.runs.add(run);
    void run.result.finally(() => this.runs.delete(run));
    const entry = this.modules.get(module.digest);
    if (this.closed) run.fail('the engine is closed');
    else if (entry === undefined) run.fail(`module ${module.digest} is not compiled (or was forgotten)`);
    else if (entry.kind !== 'command') run.fail(`module ${module.digest} is a ${entry.kind}: it has no _start to run`);
    else run.begin(this.moduleFor(entry, request.limits?.memoryPages));
    return { result: run.result, kill: (graceMs?: number) => run.kill(graceMs ?? 0) };
  }

  forget(digest: string): void {
    // Running instances hold their own reference to the module; only future runs are affected.
    this.modules.delete(digest);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.runs].map((run) => {
      run.kill(0);
      return run.result;
    });
    await Promise.allSettled(pending);
    const workers = [...this.all];
    this.idle.length = 0;
    await Promise.allSettled(workers.map((w) => this.destroy(w)));
  }

  /** The module to instantiate for a page limit: the original, or a cached variant with a lowered maximum. */
  private moduleFor(entry: CompiledEntry, memoryPages: number | undefined): Promise<WasmModule | string> {
    if (memoryPages === undefined || memoryPages <= 0 || memoryPages >= WASM32_MAX_PAGES) {
      return Promise.resolve(entry.module);
    }
    let variant = entry.variants.get(memoryPages);
    if (variant === undefined) {
      const limited = limitMemoryPages(entry.bytes, memoryPages);
      if (!limited.ok) variant = Promise.resolve(limited.message);
      else if (!limited.changed) variant = Promise.resolve(entry.module);
      else variant = wasmApi().compile(limited.bytes).catch((err: unknown) => `memory-limited variant does not compile: ${describe(err)}`);
      entry.variants.set(memoryPages, variant);
    }
    return variant;
  }

  private warm(): void {
    if (this.warmed || this.closed) return;
    this.warmed = true;
    while (this.idle.length < this.poolSize) this.idle.push(this.spawn());
  }

  private spawn(): PooledWorker {
    const data: WorkerData = { ring: createOutputRing(this.ringBytes) };
    const worker = new Worker(this.workerUrl, {
      workerData: data,
      resourceLimits: { stackSizeMb: this.stackSizeMb },
      stdin: false,
    });
    const pooled: PooledWorker = { worker, ring: new RingReader(data.ring), current: undefined, dead: false };
    this.all.add(pooled);
    // Listeners live for the worker's lifetime and dispatch to whichever run holds it; an 'error' without a
    // listener would crash the runner.
    worker.on('message', (msg: WorkerMessage) => pooled.current?.onMessage(msg));
    worker.on('error', (err) => {
      if (pooled.current !== undefined) pooled.current.onError(err);
      else this.log.warn({ err }, 'idle engine worker failed');
    });
    worker.on('exit', (code) => {
      pooled.dead = true;
      this.all.delete(pooled);
      const at = this.idle.indexOf(pooled);
      if (at >= 0) this.idle.splice(at, 1);
      pooled.current?.onExit(code);
    });
    worker.unref();
    return pooled;
  }

  /** @internal Hands a worker to a run: an idle one when there is one, else a fresh spawn. */
  acquire(run: V8Run): PooledWorker {
    const pooled = this.idle.pop() ?? this.spawn();
    pooled.current = run;
    pooled.ring.reset();
    pooled.worker.ref();
    return pooled;
  }

  /**
   * @internal A worker whose instance ended by itself goes back to the pool; any other is terminated and, if the
   * pool is short, replaced in the background. Refilling on release rather than on acquire keeps a steady stream of
   * runs on the same few workers instead of spawning one per run.
   */
  release(pooled: PooledWorker, reusable: boolean): void {
    pooled.current = undefined;
    if (reusable && !pooled.dead && !this.closed && this.idle.length < this.poolSize) {
      pooled.worker.unref();
      this.idle.push(pooled);
      return;
    }
    void this.destroy(pooled);
    if (!this.closed && this.idle.length < this.poolSize) {
      setImmediate(() => {
        if (!this.closed && this.idle.length < this.poolSize) this.idle.push(this.spawn());
      });
    }
  }

  /** @internal */
  async destroy(pooled: PooledWorker): Promise<void> {
    this.all.delete(pooled);
    if (pooled.dead) return;
    pooled.dead = true;
    try {
      await pooled.worker.terminate();
    } catch (err) {
      this.log.warn({ err }, 'engine worker did not terminate cleanly');
    }
  }
}

type RunState = 'preparing' | 'running' | 'stopping' | 'finished';

/** One instance's life on the runner side. */
class V8Run {
  readonly result: Promise<RunResult>;
  private resolve!: (result: RunResult) => void;
  private state: RunState = 'preparing';
  private pooled: PooledWorker | undefined;
  private readonly startedAt = performance.now();
  private timeLimit: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private endingTimer: NodeJS.Timeout | undefined;
  private announced: Outcome | undefined;
  private workerError: Error | undefined;

  constructor(
    private readonly engine: V8Engine,
    private readonly request: RunRequest,
    private readonly events: RunEvents,
  ) {
    this.result = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  fail(message: string): void {
    this.finish({ reason: 'load', exitCode: EXIT_CODE_LOAD, message }, 0);
  }

  begin(module: Promise<WasmModule | string>): void {
    module.then(
      (m) => this.launch(m),
      (err: unknown) => this.fail(describe(err)),
    );
  }

  private launch(module: WasmModule | string): void {
    if (this.state !== 'preparing') return; // killed while the variant compiled
    if (typeof module === 'string') return this.fail(module);
    const pooled = this.engine.acquire(this);
    this.pooled = pooled;
    this.state = 'running';
    const message: RunMessage = {
      type: 'run',
      module,
      args: [this.request.argv0, ...this.request.args],
      env: { ...this.request.env },
      preopens: (this.request.preopens ?? []).map((p) => ({ guest: p.guest, host: p.host, readonly: p.readonly })),
      stdin: compact(this.request.stdin),
      outputBytes: this.request.limits?.outputBytes || undefined,
    };
    pooled.worker.postMessage(message);
  }

  kill(graceMs: number): void {
    if (this.state === 'finished' || this.state === 'stopping') return;
    const stop = (): void => this.stop({ reason: 'killed', exitCode: EXIT_CODE_ABORT, message: 'killed' });
    if (graceMs <= 0) stop();
    else this.killTimer ??= setTimeout(stop, graceMs);
  }

  onMessage(msg: WorkerMessage): void {
    if (this.state !== 'running') return;
    switch (msg.type) {
      case 'started': {
        const ms = this.request.limits?.timeMs;
        if (ms !== undefined && ms > 0) {
          this.timeLimit = setTimeout(
            () => this.stop({ reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `time limit of ${ms} ms exceeded` }),
            ms,
          );
        }
        return;
      }
      case 'doorbell':
        this.drain();
        return;
      case 'ending': {
        const outcome = msg.outcome;
        this.announced = outcome;
        this.endingTimer ??= setTimeout(() => this.stop(outcome), this.engine.endingGraceMs);
        return;
      }
      case 'done':
        this.drain();
        this.finish(msg.outcome, msg.peakPages, true);
        return;
    }
  }

  onError(err: Error): void {
    this.workerError = err;
  }

  onExit(code: number): void {
    if (this.state !== 'running') return;
    const err = this.workerError;
    const outOfMemory = (err as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
    this.drain();
    this.finish(
      this.announced ?? {
        reason: outOfMemory ? 'memory' : 'trap',
        exitCode: EXIT_CODE_ABORT,
        message: err !== undefined ? `engine worker failed: ${err.message}` : `engine worker exited with code ${code}`,
      },
      this.pooled?.ring.pages() ?? 0,
    );
  }

  /** Ends the instance from outside: terminate the worker, then deliver whatever output it had already written. */
  private stop(outcome: Outcome): void {
    if (this.state === 'finished' || this.state === 'stopping') return;
    const pooled = this.pooled;
    if (this.state === 'preparing' || pooled === undefined) {
      this.finish(outcome, 0);
      return;
    }
    this.state = 'stopping';
    void this.engine.destroy(pooled).then(() => {
      this.drain();
      this.finish(outcome, pooled.ring.pages());
    });
  }

  private drain(): void {
    const pooled = this.pooled;
    if (pooled === undefined || this.state === 'finished') return;
    pooled.ring.drain((fd, chunk) => {
      try {
        if (fd === 2) this.events.onStderr(chunk);
        else this.events.onStdout(chunk);
      } catch (err) {
        this.engine.log.warn({ err }, 'an output listener threw; output continues');
      }
    });
  }

  private finish(outcome: Outcome, peakPages: number, reusable = false): void {
    if (this.state === 'finished') return;
    this.state = 'finished';
    clearTimeout(this.timeLimit);
    clearTimeout(this.killTimer);
    clearTimeout(this.endingTimer);
    if (this.pooled !== undefined) this.engine.release(this.pooled, reusable);
    const result: RunResult = {
      reason: outcome.reason,
      exitCode: outcome.exitCode,
      ...(outcome.message !== undefined ? { message: outcome.message } : {}),
      stats: { wallMs: performance.now() - this.startedAt, peakPages },
    };
    this.resolve(result);
  }
}
