/**
 * The engine interface: what the runner needs from a WebAssembly execution engine. The default engine is V8's
 * WebAssembly with our own WASI preview1 host; a WasmEdge adapter drives the `wasmedge` CLI when installed.
 * Every engine runs each instance so that a trap, an infinite loop or a memory bomb ends only that instance.
 */

/** Limits per run; absent or 0 means unlimited. Names mirror `wasmedge run` options. */
export interface RunLimits {
  /** --time-limit: wall-clock milliseconds before the instance is killed (reason `timeout`, exit 134). */
  readonly timeMs?: number;
  /** --memory-page-limit: maximum 64 KiB pages of linear memory (growth beyond fails inside the module). */
  readonly memoryPages?: number;
  /** Maximum bytes of stdout+stderr; exceeding it ends the instance (reason `output`, exit 134). */
  readonly outputBytes?: number;
  /** --gas-limit: instruction budget, counted deterministically (reason `gas`, exit 134). */
  readonly gas?: number;
}

export interface Preopen {
  /** Path the module sees, e.g. `/data`. */
  readonly guest: string;
  /** Host directory it maps to. */
  readonly host: string;
  readonly readonly: boolean;
}

export interface RunRequest {
  /** WASI argv[0]; `wasmedge run` uses the module file name. */
  readonly argv0: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly preopens?: readonly Preopen[];
  /** Bytes readable on fd 0; absent means stdin is empty (EOF at once). */
  readonly stdin?: Uint8Array;
  readonly limits?: RunLimits;
}

/** Why an instance ended. `exit` carries the WASI exit code; everything else maps to 134 or 1 like `wasmedge run`. */
export type ExitReason = 'exit' | 'trap' | 'timeout' | 'memory' | 'output' | 'gas' | 'killed' | 'load';

export interface RunStats {
  readonly wallMs: number;
  readonly peakPages: number;
  /** Instructions executed (gas used) when a gas limit was set. */
  readonly instructions?: number;
  /** `warm`: a pre-spawned worker / pre-instantiated instance was used; `cold`: one had to be created. */
  readonly start?: 'cold' | 'warm';
  /** Milliseconds from the run request to the module's entry being called. */
  readonly startMs?: number;
}

export interface RunResult {
  readonly reason: ExitReason;
  /** Process-style exit code: WASI code for `exit`, 134 for trap/timeout/gas/memory/output/killed, 1 for load. */
  readonly exitCode: number;
  /** Human-readable detail: the trap message, the limit hit, the load error. */
  readonly message?: string;
  readonly stats: RunStats;
}

export interface RunEvents {
  /**
   * Called as the module writes; chunks are copies the callee may keep. Returning false asks the engine to
   * hold further output (the module blocks once its output buffer fills) until `resume()`; output still
   * buffered when the instance ends is delivered before `result` settles.
   */
  onStdout(chunk: Uint8Array): unknown;
  onStderr(chunk: Uint8Array): unknown;
}

export interface RunningInstance {
  readonly result: Promise<RunResult>;
  /** Delivers held output again after an event callback returned false. Engines without flow control omit it. */
  resume?(): void;
  /** Ends the instance (reason `killed`) after `graceMs` if it has not ended by then. */
  kill(graceMs?: number): void;
}

/** A WebAssembly value crossing the boundary. i64 travels as a decimal string so JSON keeps every bit. */
export type WasmValue =
  | { readonly type: 'i32'; readonly value: number }
  | { readonly type: 'i64'; readonly value: string }
  | { readonly type: 'f32'; readonly value: number }
  | { readonly type: 'f64'; readonly value: number };

/** One call of a ReactorInstance.callMany batch. */
export interface ReactorCall {
  readonly fn: string;
  readonly args: readonly WasmValue[];
  readonly limits?: Pick<RunLimits, 'timeMs' | 'gas'>;
}

export type CallResult =
  | { readonly ok: true; readonly results: readonly WasmValue[]; readonly stats: RunStats }
  | { readonly ok: false; readonly reason: ExitReason; readonly exitCode: number; readonly message?: string; readonly stats: RunStats };

/**
 * A reactor instance kept alive between calls (FaaS mode, warm pools). `_initialize` has run. A call that traps,
 * times out or runs out of gas ends the instance (`alive` turns false); the runner replaces it.
 */
export interface ReactorInstance {
  readonly alive: boolean;
  /** `warm`: taken from a warm pool (instantiated ahead); `cold`: instantiated on request. */
  readonly start?: 'cold' | 'warm';
  /** Milliseconds from the instantiate request to `_initialize` being called. */
  readonly startMs?: number;
  /** Calls an exported function; argument types must match the export's signature. Never throws. */
  call(fn: string, args: readonly WasmValue[], limits?: Pick<RunLimits, 'timeMs' | 'gas'>): Promise<CallResult>;
  /**
   * Optional: many calls with one hand-off to the engine (a batch costs one worker wake-up, not one per call).
   * Each call behaves exactly as `call` would; `done(i, result)` reports call i, possibly before callMany
   * returns, and must not call into this instance synchronously. Engines without it get one `call` per call.
   */
  callMany?(calls: readonly ReactorCall[], done: (index: number, result: CallResult) => void): void;
  /** Bytes of this instance's linear memory right now. */
  memoryBytes(): number;
  close(): Promise<void>;
}

export interface CompiledModule {
  readonly digest: string;
  readonly kind: 'command' | 'reactor' | 'library';
}

export interface Engine {
  readonly name: string;
  /** Compiles bytes once; throws AgentError AGT_ERR_RUN_LOAD with the engine's message on failure. */
  compile(digest: string, bytes: Uint8Array): Promise<CompiledModule>;
  /** Runs a command module's `_start`. Never throws: load/instantiate errors resolve with reason `load`. */
  run(module: CompiledModule, request: RunRequest, events: RunEvents): RunningInstance;
  /**
   * Creates a reactor instance: instantiates with WASI (args/env/preopens from the request; stdin empty) and runs
   * `_initialize` if exported. Load or `_initialize` failures reject with AGT_ERR_RUN_LOAD.
   */
  instantiate(module: CompiledModule, request: RunRequest, events: RunEvents): Promise<ReactorInstance>;
  /**
   * Keeps `count` instances of a command module ready ahead of requests (warm starts); 0 scales to zero.
   * Optional: engines that cannot pre-instantiate (the WasmEdge CLI) leave it out. Resolves with how many are ready.
   */
  prewarm?(module: CompiledModule, count: number, limits?: Pick<RunLimits, 'memoryPages' | 'gas'>): Promise<number>;
  /** Frees compiled state for a digest (module removed). */
  forget(digest: string): void;
  close(): Promise<void>;
}

export const EXIT_CODE_ABORT = 134;
export const EXIT_CODE_LOAD = 1;
