/** Messages between the V8 engine and its worker threads (both sides are ours; shapes are trusted). */
import type { MessagePort } from 'node:worker_threads';

import type { WasiPreopen, WasmModule } from '../wasi/index.js';
import type { ExitReason } from './types.js';

export interface WorkerData {
  /** Output ring shared for the worker's lifetime; see output-ring.ts. */
  readonly ring: SharedArrayBuffer;
  /** Request/result queue; see call-queue.ts. */
  readonly queue: SharedArrayBuffer;
  /** Carries the payload of CONTROL records (read with receiveMessageOnPort). */
  readonly port: MessagePort;
  /** Idle polls of the request counter before the worker blocks in Atomics.wait. */
  readonly spin: number;
}

/** The per-run part of an instance: what `WasiHost.configure` takes. */
export interface RunSpec {
  /** argv including argv[0]. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly preopens: readonly WasiPreopen[];
  readonly stdin: Uint8Array | undefined;
  readonly outputBytes: number | undefined;
}

/** An export the reactor may call, with queue value codes (VT_*) for its parameters and results. */
export interface ExportSpec {
  readonly name: string;
  readonly params: readonly number[];
  readonly results: readonly number[];
}

export type ControlMessage =
  /** Keep the module for `key` and `keep` instances of it ready (0 = compiled only). */
  | { readonly type: 'load'; readonly key: string; readonly module: WasmModule; readonly keep: number }
  | { readonly type: 'unload'; readonly key: string }
  /** Run `_start`; `module` is absent when the worker already holds `key`. */
  | {
      readonly type: 'run';
      readonly key: string;
      readonly module: WasmModule | undefined;
      readonly run: RunSpec;
      readonly gas: number | undefined;
      readonly requestedAt: number;
    }
  /** Become a reactor: configure an instance, run `_initialize`, then serve CALL records. */
  | {
      readonly type: 'instantiate';
      readonly key: string;
      readonly module: WasmModule | undefined;
      readonly run: RunSpec;
      readonly gas: number | undefined;
      readonly requestedAt: number;
      readonly exports: readonly ExportSpec[];
    };

export interface Outcome {
  readonly reason: ExitReason;
  readonly exitCode: number;
  readonly message?: string;
}

export interface StartInfo {
  readonly start: 'cold' | 'warm';
  /** From the request (runner clock) to the entry being called. */
  readonly startMs: number;
}

export type WorkerMessage =
  /** The output ring has data (raised on the runner side from the ring's Atomics doorbell, never posted). */
  | { readonly type: 'doorbell' }
  /** proc_exit or the output limit fired; `done` should follow unless the module swallowed the sentinel. */
  | { readonly type: 'ending'; readonly outcome: Outcome }
  | ({ readonly type: 'done'; readonly outcome: Outcome; readonly peakPages: number; readonly instructions?: number } & StartInfo)
  | ({ readonly type: 'instantiated'; readonly peakPages: number; readonly instructions?: number } & StartInfo)
  | { readonly type: 'failed'; readonly outcome: Outcome }
  /** `count` instances of `key` are ready in this worker. */
  | { readonly type: 'ready'; readonly key: string; readonly count: number }
  | { readonly type: 'load-failed'; readonly key: string; readonly message: string };
