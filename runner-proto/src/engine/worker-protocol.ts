/** Messages between the V8 engine and its worker threads (both sides are ours; shapes are trusted). */
import type { WasiPreopen, WasmModule } from '../wasi/index.js';
import type { ExitReason } from './types.js';

export interface WorkerData {
  /** Output ring shared for the worker's lifetime; see output-ring.ts. */
  readonly ring: SharedArrayBuffer;
}

export interface RunMessage {
  readonly type: 'run';
  readonly module: WasmModule;
  /** argv including argv[0]. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly preopens: readonly WasiPreopen[];
  readonly stdin: Uint8Array | undefined;
  readonly outputBytes: number | undefined;
}

export interface Outcome {
  readonly reason: ExitReason;
  readonly exitCode: number;
  readonly message?: string;
}

export type WorkerMessage =
  /** Instantiation is about to begin; the time limit counts from here. */
  | { readonly type: 'started' }
  /** The output ring has data. */
  | { readonly type: 'doorbell' }
  /** proc_exit or the output limit fired; `done` should follow unless the module swallowed the sentinel. */
  | { readonly type: 'ending'; readonly outcome: Outcome }
  | { readonly type: 'done'; readonly outcome: Outcome; readonly peakPages: number };
