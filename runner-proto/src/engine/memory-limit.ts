/**
 * `--memory-page-limit` for V8. V8 has no per-instance page cap, but a memory's declared maximum is enforced by
 * `memory.grow`, so the limit is applied by rewriting the maximum in the module's memory section before compiling
 * a variant: growth past the limit then returns -1 inside the module, exactly what WasmEdge does. A memory whose
 * initial size already exceeds the limit cannot be created; WasmEdge fails instantiation there, which its CLI
 * reports as exit 1, so this engine reports reason `load`, exit 1 as well.
 *
 * Only the memory section is parsed (a minimal LEB128 walk); the runner must not depend on the agent's checker.
 * Imported memories are left alone: the WASI host provides none, so such modules fail to instantiate anyway.
 */
import { uleb } from './wasm-binary.js';

const MEMORY_SECTION = 5;
const LIMITS_HAS_MAX = 0x01;
const LIMITS_MEMORY64 = 0x04;

export type LimitResult =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly changed: boolean }
  | { readonly ok: false; readonly message: string };

interface Leb {
  readonly value: number;
  readonly next: number;
}

function readLeb(bytes: Uint8Array, at: number, maxBytes: number): Leb {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    const byte = bytes[at + i];
    if (byte === undefined) throw new Error(`truncated LEB128 at byte ${at}`);
    // Multiplication, not shifts: memory64 limits exceed 32 bits and JS shifts are 32-bit.
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return { value, next: at + i + 1 };
  }
  throw new Error(`LEB128 too long at byte ${at}`);
}


/** Declared memories (min/max pages) of a module, for diagnostics and tests. */
export function declaredMemories(bytes: Uint8Array): { min: number; max: number | undefined }[] {
  const section = findMemorySection(bytes);
  if (section === undefined) return [];
  return parseMemories(bytes, section.contentStart).map(({ min, max }) => ({ min, max }));
}

interface SectionLocation {
  readonly idAt: number;
  readonly contentStart: number;
  readonly contentEnd: number;
}

function findMemorySection(bytes: Uint8Array): SectionLocation | undefined {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error('not a WebAssembly binary (bad magic)');
  }
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at] as number;
    const size = readLeb(bytes, at + 1, 5);
    const contentEnd = size.next + size.value;
    if (contentEnd > bytes.length) throw new Error(`section ${id} at byte ${at} runs past the end`);
    if (id === MEMORY_SECTION) return { idAt: at, contentStart: size.next, contentEnd };
    at = contentEnd;
  }
  return undefined;
}

interface ParsedMemory {
  readonly flags: number;
  readonly min: number;
  readonly max: number | undefined;
}

function parseMemories(bytes: Uint8Array, start: number): ParsedMemory[] {
  const count = readLeb(bytes, start, 5);
  let at = count.next;
  const memories: ParsedMemory[] = [];
  for (let i = 0; i < count.value; i++) {
    const flags = bytes[at] as number;
    const width = (flags & LIMITS_MEMORY64) !== 0 ? 10 : 5;
    const min = readLeb(bytes, at + 1, width);
    at = min.next;
    let max: number | undefined;
    if ((flags & LIMITS_HAS_MAX) !== 0) {
      const m = readLeb(bytes, at, width);
      max = m.value;
      at = m.next;
    }
    memories.push({ flags, min: min.value, max });
  }
  return memories;
}

/** Returns the bytes with every defined memory's maximum lowered to `maxPages` (unchanged when already lower). */
export function limitMemoryPages(bytes: Uint8Array, maxPages: number): LimitResult {
  let section: SectionLocation | undefined;
  let memories: ParsedMemory[];
  try {
    section = findMemorySection(bytes);
    if (section === undefined) return { ok: true, bytes, changed: false };
    memories = parseMemories(bytes, section.contentStart);
  } catch (err) {
    return { ok: false, message: `cannot apply the memory page limit: ${(err as Error).message}` };
  }
  for (const [i, m] of memories.entries()) {
    if (m.min > maxPages) {
      return {
        ok: false,
        message: `memory ${i} needs ${m.min} pages at start, more than the limit of ${maxPages} pages`,
      };
    }
  }
  if (memories.every((m) => m.max !== undefined && m.max <= maxPages)) return { ok: true, bytes, changed: false };

  const content: number[] = [...uleb(memories.length)];
  for (const m of memories) {
    const max = m.max === undefined ? maxPages : Math.min(m.max, maxPages);
    content.push(m.flags | LIMITS_HAS_MAX, ...uleb(m.min), ...uleb(max));
  }
  const header = [MEMORY_SECTION, ...uleb(content.length)];
  const out = new Uint8Array(section.idAt + header.length + content.length + (bytes.length - section.contentEnd));
  out.set(bytes.subarray(0, section.idAt), 0);
  out.set(header, section.idAt);
  out.set(content, section.idAt + header.length);
  out.set(bytes.subarray(section.contentEnd), section.idAt + header.length + content.length);
  return { ok: true, bytes: out, changed: true };
}
