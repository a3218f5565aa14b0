/** Engine front door: the interface every engine implements, the default V8 engine and the WasmEdge adapter. */
import { AgentError } from '../errors/index.js';
import type { Engine } from './types.js';
import { V8Engine, type V8EngineOptions } from './v8.js';
import { detectWasmEdge, WasmEdgeEngine, type WasmEdgeEngineOptions } from './wasmedge.js';

export * from './types.js';
export { V8Engine } from './v8.js';
export type { V8EngineOptions } from './v8.js';
export {
  classifyExit,
  detectWasmEdge,
  formatCliValue,
  LogSplitter,
  parseCliValue,
  parseInstructions,
  WasmEdgeArgsError,
  WasmEdgeEngine,
  wasmedgeArgs,
} from './wasmedge.js';
export type { WasmEdgeArgsOptions, WasmEdgeEngineOptions, WasmEdgeInfo, WasmEdgeVerdict } from './wasmedge.js';
export { declaredMemories, limitMemoryPages } from './memory-limit.js';
export type { LimitResult } from './memory-limit.js';
export { GAS_LEFT_EXPORT, GAS_OUT_EXPORT, GAS_UNLIMITED, instrumentGas } from './gas.js';
export type { GasModule, GasOptions } from './gas.js';

export type EngineName = 'v8' | 'wasmedge';
export const ENGINE_NAMES: readonly EngineName[] = ['v8', 'wasmedge'];

/** Options for `createEngine`: each engine reads its own (both take `logger`). */
export type EngineOptions = V8EngineOptions & WasmEdgeEngineOptions;

/**
 * Creates an engine by name. `wasmedge` needs the WasmEdge CLI: without it this throws AgentError
 * AGT_ERR_CONFIG_INVALID saying so (check first with `detectEngines()`).
 */
export function createEngine(name: 'v8', options?: V8EngineOptions): V8Engine;
export function createEngine(name: 'wasmedge', options?: WasmEdgeEngineOptions): WasmEdgeEngine;
export function createEngine(name: EngineName, options?: EngineOptions): Engine;
export function createEngine(name: EngineName, options: EngineOptions = {}): Engine {
  switch (name) {
    case 'v8':
      return new V8Engine(options);
    case 'wasmedge':
      return new WasmEdgeEngine(options);
    default: {
      const unknown: never = name;
      throw new AgentError('AGT_ERR_CONFIG_INVALID', `unknown engine ${String(unknown)}; expected one of ${ENGINE_NAMES.join(', ')}`, { field: 'engine' });
    }
  }
}

export interface EngineAvailability {
  readonly name: EngineName;
  readonly available: boolean;
  readonly version?: string;
  /** Why it is not available. */
  readonly detail?: string;
}

/** Which engines this host can run, e.g. to default to WasmEdge when it is installed. */
export function detectEngines(options: { wasmedgeBinary?: string } = {}): EngineAvailability[] {
  const wasm = (globalThis as { WebAssembly?: unknown }).WebAssembly;
  const v8: EngineAvailability =
    wasm === undefined
      ? { name: 'v8', available: false, detail: 'WebAssembly is not available in this Node process (started with --jitless?)' }
      : { name: 'v8', available: true, version: process.versions.v8 };
  const info = detectWasmEdge(options.wasmedgeBinary);
  const wasmedge: EngineAvailability = {
    name: 'wasmedge',
    available: info.available,
    ...(info.version !== undefined ? { version: info.version } : {}),
    ...(info.detail !== undefined ? { detail: info.detail } : {}),
  };
  return [v8, wasmedge];
}
