import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { reject } from './errors.js';
import type { ModuleInfo, SectionInfo } from './types.js';

// The project compiles without the DOM lib, which is where TypeScript declares WebAssembly; this is the
// slice of it the checker uses.
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  validate(bytes: Uint8Array): boolean;
  readonly CompileError: abstract new (...args: never[]) => Error;
}

/**
 * Full validation (types, instruction sequences, indices in bodies) is V8's job: it is the engine the runner
 * compiles with by default, so "V8 accepts it" is exactly the property deployment needs. This wrapper turns
 * V8's CompileError into an AgentError that points at the same section and offset our own errors do.
 */
export function validateWithV8(bytes: Uint8Array, info: ModuleInfo): void {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined) {
    // Refusing is safer than passing unvalidated modules on; --jitless is the usual way to get here.
    throw new AgentError(
      'AGT_ERR_INTERNAL',
      'module: WebAssembly is not available in this Node process (started with --jitless?), so modules cannot be validated',
      { rule: 'validate' },
    );
  }
  // validate() checks without generating code (several times cheaper than compiling); only a module that fails
  // is compiled, for V8's message and offset.
  if (wasm.validate(bytes)) return;
  try {
    new wasm.Module(bytes);
    // validate() refused what the compiler accepts: trust the refusal, with what little we know.
    throw reject('AGT_ERR_WASM_INVALID', 'validate', {}, 'fails validation (V8 gave no reason)');
  } catch (err) {
    if (err instanceof AgentError) throw err;
    const raw = err instanceof Error ? err.message : String(err);
    if (!(err instanceof wasm.CompileError)) {
      throw reject('AGT_ERR_INTERNAL', 'validate', {}, `V8 could not compile the module: ${raw}`, {}, err);
    }
    throw fromCompileError(raw, info, err);
  }
}

/** V8 says e.g. "WebAssembly.Module(): Compiling function #0 failed: ... @+24"; the number is a file offset. */
export function fromCompileError(raw: string, info: ModuleInfo, cause?: unknown): AgentError {
  const match = /\s*@\+(\d+)/.exec(raw);
  const offset = match === null ? undefined : Number(match[1]);
  const text = raw.replace(/^WebAssembly\.Module\(\):\s*/, '').replace(/\s*@\+\d+/, '');
  const section = offset === undefined ? undefined : sectionAt(info.sections, offset);
  const fn = /function #(\d+)/.exec(text);
  const extra = fn === null ? {} : { function: Number(fn[1]) };
  return reject(
    'AGT_ERR_WASM_INVALID',
    'validate',
    { ...(section === undefined ? {} : { section: section.name }), ...(offset === undefined ? {} : { offset }) },
    `fails validation: ${text}`,
    extra,
    cause,
  );
}

function sectionAt(sections: readonly SectionInfo[], offset: number): SectionInfo | undefined {
  return sections.find((s) => offset >= s.offset && offset < s.contentOffset + s.size);
}
