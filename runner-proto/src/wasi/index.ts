/** Our WASI preview1 host: streaming stdio, output limits, and preopens confined by realpath checks. */
export { WasiHost, WasiExit, WasiOutputLimit } from './host.js';
export type { WasiEnding, WasiHostOptions, WasiPreopen, WasiRunOptions } from './host.js';
export {
  Clockid,
  Errno,
  Eventtype,
  Fdflags,
  Filetype,
  Lookupflags,
  Oflags,
  PREVIEW1_FUNCTIONS,
  Rights,
  Whence,
} from './constants.js';
export type { ErrnoValue, Preview1Function } from './constants.js';
export { Wasm, wasmApi } from './webassembly.js';
export type {
  WasmApi,
  WasmExportDescriptor,
  WasmGlobal,
  WasmImportDescriptor,
  WasmImports,
  WasmInstance,
  WasmMemory,
  WasmModule,
} from './webassembly.js';
