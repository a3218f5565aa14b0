/** One command run (`_start`) on the runner side of the V8 engine. */
import { performance } from 'node:perf_hooks';

import type { WasmModule } from '../wasi/index.js';
import { CTL, nowMs, RUN_BEGUN_F64, RUN_START_MS_F64 } from './call-queue.js';
import { EXIT_CODE_ABORT, EXIT_CODE_LOAD, type RunEvents, type RunRequest, type RunResult, type RunStats } from './types.js';
import type { WorkerHandle, WorkerOwner } from './v8-handle.js';
import type { Outcome, StartInfo, WorkerMessage } from './worker-protocol.js';

/** What a run needs from the engine. */
export interface RunHost {
  readonly endingGraceMs: number;
  /** A worker for the variant: one of its warm pool when idle, else a generic one. */
  acquire(owner: WorkerOwner, key: string): { handle: WorkerHandle; holdsModule: boolean };
  release(handle: WorkerHandle, reusable: boolean): void;
  destroy(handle: WorkerHandle): Promise<void>;
  warnListener(err: unknown): void;
}

export interface Launch {
  readonly key: string;
  readonly module: WasmModule;
  readonly gas: number | undefined;
}

type RunState = 'preparing' | 'running' | 'stopping' | 'finished';

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Structured clone copies a view's whole backing buffer; a view into a large buffer is sliced first. */
function compact(bytes: Uint8Array | undefined): Uint8Array | undefined {
  if (bytes === undefined || bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return bytes.slice();
}

export function runSpecOf(request: RunRequest, stdin: boolean) {
  return {
    args: [request.argv0, ...request.args],
    env: { ...request.env },
    preopens: (request.preopens ?? []).map((p) => ({ guest: p.guest, host: p.host, readonly: p.readonly })),
    stdin: stdin ? compact(request.stdin) : undefined,
    outputBytes: request.limits?.outputBytes || undefined,
  };
}

export class V8Run implements WorkerOwner {
  readonly result: Promise<RunResult>;
  private resolve!: (result: RunResult) => void;
  private state: RunState = 'preparing';
  private handle: WorkerHandle | undefined;
  private readonly startedAt = performance.now();
  private readonly requestedAt = nowMs();
  private timeLimit: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private endingTimer: NodeJS.Timeout | undefined;
  private announced: Outcome | undefined;
  private workerError: Error | undefined;

  constructor(
    private readonly host: RunHost,
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

  begin(launch: Promise<Launch | string>): void {
    launch.then(
      (l) => (typeof l === 'string' ? this.fail(l) : this.launch(l)),
      (err: unknown) => this.fail(describe(err)),
    );
  }

  private launch(l: Launch): void {
    if (this.state !== 'preparing') return; // killed while the variant compiled
    const { handle, holdsModule } = this.host.acquire(this, l.key);
    this.handle = handle;
    Atomics.store(handle.queue.ctl, CTL.RUN_START, 0);
    Atomics.store(handle.queue.ctl, CTL.RUN_BEGUN, 0);
    this.state = 'running';
    const ms = this.request.limits?.timeMs;
    if (ms !== undefined && ms > 0) this.limitTime(handle, ms);
    handle.send({
      type: 'run',
      key: l.key,
      module: holdsModule ? undefined : l.module,
      run: runSpecOf(this.request, true),
      gas: l.gas,
      requestedAt: this.requestedAt,
    });
  }

  /**
   * The time limit counts from when the worker picked the run up (it stamps RUN_BEGUN in shared memory), so a
   * worker still booting does not eat into it; instantiation does count, as it did with WasmEdge's --time-limit.
   */
  private limitTime(handle: WorkerHandle, ms: number): void {
    const check = (): void => {
      if (this.state !== 'running') return;
      let wait = ms;
      if (Atomics.load(handle.queue.ctl, CTL.RUN_BEGUN) === 1) {
        const elapsed = nowMs() - (handle.queue.ctlF64[RUN_BEGUN_F64] as number);
        if (elapsed >= ms) {
          this.stop({ reason: 'timeout', exitCode: EXIT_CODE_ABORT, message: `time limit of ${ms} ms exceeded` });
          return;
        }
        wait = ms - elapsed;
      }
      this.timeLimit = setTimeout(check, Math.max(1, wait));
    };
    this.timeLimit = setTimeout(check, ms);
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
      case 'doorbell':
        this.drain();
        return;
      case 'ending': {
        const outcome = msg.outcome;
        this.announced = outcome;
        this.endingTimer ??= setTimeout(() => this.stop(outcome), this.host.endingGraceMs);
        return;
      }
      case 'done':
        this.drain(true);
        this.finish(msg.outcome, msg.peakPages, true, msg, msg.instructions);
        return;
      default:
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
    this.drain(true);
    this.finish(
      this.announced ?? {
        reason: outOfMemory ? 'memory' : 'trap',
        exitCode: EXIT_CODE_ABORT,
        message: err !== undefined ? `engine worker failed: ${err.message}` : `engine worker exited with code ${code}`,
      },
      this.handle?.ring.pages() ?? 0,
    );
  }

  /** Ends the instance from outside: terminate the worker, then deliver whatever output it had already written. */
  private stop(outcome: Outcome): void {
    if (this.state === 'finished' || this.state === 'stopping') return;
    const handle = this.handle;
    if (this.state === 'preparing' || handle === undefined) {
      this.finish(outcome, 0);
      return;
    }
    this.state = 'stopping';
    void this.host.destroy(handle).then(() => {
      this.drain(true);
      this.finish(outcome, handle.ring.pages());
    });
  }

  /** Output held because the listener said it was full (see RunEvents). */
  private paused = false;

  /**
   * Hands buffered output to the listener. While paused only a final drain (`force`: the instance ended) runs,
   * and it delivers everything, so nothing written is ever lost.
   */
  private drain(force = false): void {
    const handle = this.handle;
    if (handle === undefined || this.state === 'finished') return;
    if (this.paused && !force) return;
    const complete = handle.ring.drain((fd, chunk) => {
      let more: unknown = true;
      try {
        more = fd === 2 ? this.events.onStderr(chunk) : this.events.onStdout(chunk);
      } catch (err) {
        this.host.warnListener(err);
      }
      return force || more !== false;
    });
    if (!complete && !force) {
      this.paused = true;
      // No doorbells while held: the writer blocks once the ring is full; resume() drains and re-arms.
      handle.ring.unwatch();
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const handle = this.handle;
    if (handle === undefined || this.state !== 'running') return;
    this.drain();
    if (!this.paused && handle.owner === this) handle.owner = this; // re-arms the doorbell watch
  }

  private finish(outcome: Outcome, peakPages: number, reusable = false, started?: StartInfo, instructions?: number): void {
    let start = started;
    if (this.state === 'finished') return;
    this.state = 'finished';
    clearTimeout(this.timeLimit);
    clearTimeout(this.killTimer);
    clearTimeout(this.endingTimer);
    if (this.handle !== undefined) {
      // A run stopped from outside sent no `done`: the worker stamped how it started in shared memory.
      const stamped = Atomics.load(this.handle.queue.ctl, CTL.RUN_START);
      if (start === undefined && stamped !== 0) start = { start: stamped === 1 ? 'warm' : 'cold', startMs: this.handle.queue.ctlF64[RUN_START_MS_F64] as number };
      this.host.release(this.handle, reusable);
    }
    // A run stopped from outside (timeout, kill) has no instruction count: its worker is gone.
    const count = instructions;
    const stats: RunStats = {
      wallMs: performance.now() - this.startedAt,
      peakPages,
      ...(count !== undefined ? { instructions: count } : {}),
      ...(start !== undefined ? { start: start.start, startMs: start.startMs } : {}),
    };
    const result: RunResult = {
      reason: outcome.reason,
      exitCode: outcome.exitCode,
      ...(outcome.message !== undefined ? { message: outcome.message } : {}),
      stats,
    };
    this.resolve(result);
  }
}
