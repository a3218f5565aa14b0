/**
 * The project compiles without the DOM lib, which is where TypeScript declares `WebAssembly`; this is the slice
 * of that API the runner uses, typed here once for the WASI host and the engine.
 */

/** Opaque compiled module; cloneable to worker threads. */
export interface WasmModule {
  readonly __wasmModule?: never;
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}

/** A global; i64 globals read and write as bigint. */
export interface WasmGlobal {
  value: unknown;
}

export interface WasmInstance {
  readonly exports: Readonly<Record<string, unknown>>;
}

export type WasmExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface WasmExportDescriptor {
  readonly name: string;
  readonly kind: WasmExternKind;
}

export interface WasmImportDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: WasmExternKind;
}

export type WasmImports = Record<string, Record<string, unknown>>;

export interface WasmApi {
  readonly Module: {
    new (bytes: Uint8Array): WasmModule;
    exports(module: WasmModule): WasmExportDescriptor[];
    imports(module: WasmModule): WasmImportDescriptor[];
  };
  readonly Instance: new (module: WasmModule, imports?: WasmImports) => WasmInstance;
  readonly Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  readonly Global: new (descriptor: { value: 'i32' | 'i64' | 'f32' | 'f64'; mutable?: boolean }, value?: unknown) => WasmGlobal;
  readonly RuntimeError: new (message?: string) => Error;
  readonly CompileError: new (message?: string) => Error;
  readonly LinkError: new (message?: string) => Error;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  validate(bytes: Uint8Array): boolean;
}

/** Undefined only when Node runs with --jitless; callers check before use. */
export const Wasm: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

export function wasmApi(): WasmApi {
  if (Wasm === undefined) {
    throw new Error('WebAssembly is not available in this Node process (started with --jitless?)');
  }
  return Wasm;
}
