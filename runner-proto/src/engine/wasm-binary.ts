/**
 * Just enough of the WebAssembly binary format for the engines: section boundaries, function types, imports,
 * exports and the global count. The JS API cannot tell an export's signature (no type reflection in Node 20),
 * yet typed reactor calls must be checked before they reach a worker, and gas instrumentation must rewrite
 * sections; both read the binary here. The runner must not depend on the agent's checker, hence this copy.
 */

export type NumberType = 'i32' | 'i64' | 'f32' | 'f64';
export type ValueType = NumberType | 'v128' | 'funcref' | 'externref';

export interface FunctionSignature {
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
}

/** Thrown for bytes this reader cannot follow (truncated, or a feature it does not know). */
export class WasmFormatError extends Error {
  constructor(message: string, readonly offset?: number) {
    super(offset === undefined ? message : `${message} (byte ${offset})`);
    this.name = 'WasmFormatError';
  }
}

export const SECTION = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

/** Where each non-custom section must appear; new sections are inserted by this order. */
const SECTION_ORDER: Readonly<Record<number, number>> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

export function sectionRank(id: number): number {
  return SECTION_ORDER[id] ?? 0;
}

const VALUE_TYPES: Readonly<Record<number, ValueType>> = {
  0x7f: 'i32',
  0x7e: 'i64',
  0x7d: 'f32',
  0x7c: 'f64',
  0x7b: 'v128',
  0x70: 'funcref',
  0x6f: 'externref',
};

export const EXTERNAL_KIND = { function: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

export class ByteReader {
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
    readonly end = bytes.length,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError('unexpected end of input', this.pos);
    return this.bytes[this.pos++] as number;
  }

  /** Unsigned LEB128 of at most 32 bits, as a number. */
  u32(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new WasmFormatError('LEB128 longer than 5 bytes', this.pos);
  }

  /** Skips any LEB128 (signed or unsigned) of at most `maxBytes` bytes. */
  skipLeb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) {
      if ((this.byte() & 0x80) === 0) return;
    }
    throw new WasmFormatError(`LEB128 longer than ${maxBytes} bytes`, this.pos);
  }

  skip(n: number): void {
    if (this.pos + n > this.end) throw new WasmFormatError('unexpected end of input', this.pos);
    this.pos += n;
  }

  name(): string {
    const length = this.u32();
    const start = this.pos;
    this.skip(length);
    return new TextDecoder().decode(this.bytes.subarray(start, start + length));
  }

  valueType(): ValueType {
    const at = this.pos;
    const code = this.byte();
    const type = VALUE_TYPES[code];
    if (type === undefined) throw new WasmFormatError(`unsupported value type 0x${code.toString(16)}`, at);
    return type;
  }

  /** Table/memory limits: flags, min, optional max (64-bit for memory64). */
  limits(): void {
    const flags = this.byte();
    const width = (flags & 0x04) !== 0 ? 10 : 5;
    this.skipLeb(width);
    if ((flags & 0x01) !== 0) this.skipLeb(width);
  }
}

export function uleb(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 of an integer up to 2^53 in magnitude (bigint arithmetic keeps it exact). */
export function sleb(value: number | bigint): number[] {
  const out: number[] = [];
  let rest = BigInt(value);
  for (;;) {
    const byte = Number(rest & 0x7fn);
    rest >>= 7n;
    if ((rest === 0n && (byte & 0x40) === 0) || (rest === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export interface Section {
  readonly id: number;
  /** Offset of the id byte. */
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export function readSections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmFormatError('not a WebAssembly binary (bad magic)', 0);
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmFormatError('unsupported binary version (components are not modules)', 4);
  }
  const sections: Section[] = [];
  const r = new ByteReader(bytes, 8);
  while (!r.done) {
    const start = r.pos;
    const id = r.byte();
    const size = r.u32();
    const contentStart = r.pos;
    r.skip(size);
    sections.push({ id, start, contentStart, end: r.pos });
  }
  return sections;
}

export interface ExportEntry {
  readonly name: string;
  readonly kind: number;
  readonly index: number;
}

export interface ModuleSummary {
  readonly sections: readonly Section[];
  /** Function types by type index; undefined where the type is not a plain function type. */
  readonly types: readonly (FunctionSignature | undefined)[];
  readonly importedFunctions: number;
  readonly importedGlobals: number;
  /** Type index of every function, imported ones first. */
  readonly functionTypes: readonly number[];
  readonly definedGlobals: number;
  readonly exports: readonly ExportEntry[];
  readonly hasStartSection: boolean;
}

function readTypes(r: ByteReader): (FunctionSignature | undefined)[] {
  const count = r.u32();
  const types: FunctionSignature[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const form = r.byte();
    if (form !== 0x60) throw new WasmFormatError(`unsupported type form 0x${form.toString(16)} (GC types)`, at);
    const params: ValueType[] = [];
    for (let n = r.u32(); n > 0; n--) params.push(r.valueType());
    const results: ValueType[] = [];
    for (let n = r.u32(); n > 0; n--) results.push(r.valueType());
    types.push({ params, results });
  }
  return types;
}

export function summarize(bytes: Uint8Array): ModuleSummary {
  const sections = readSections(bytes);
  let types: (FunctionSignature | undefined)[] = [];
  let importedFunctions = 0;
  let importedGlobals = 0;
  const functionTypes: number[] = [];
  let definedGlobals = 0;
  const exports: ExportEntry[] = [];
  let hasStartSection = false;
  for (const s of sections) {
    const r = new ByteReader(bytes, s.contentStart, s.end);
    switch (s.id) {
      case SECTION.type:
        types = readTypes(r);
        break;
      case SECTION.import:
        for (let n = r.u32(); n > 0; n--) {
          r.name();
          r.name();
          const at = r.pos;
          const kind = r.byte();
          if (kind === EXTERNAL_KIND.function) {
            functionTypes.push(r.u32());
            importedFunctions++;
          } else if (kind === EXTERNAL_KIND.table) {
            r.valueType();
            r.limits();
          } else if (kind === EXTERNAL_KIND.memory) {
            r.limits();
          } else if (kind === EXTERNAL_KIND.global) {
            r.valueType();
            r.byte();
            importedGlobals++;
          } else if (kind === EXTERNAL_KIND.tag) {
            r.byte();
            r.u32();
          } else {
            throw new WasmFormatError(`unknown import kind ${kind}`, at);
          }
        }
        break;
      case SECTION.function:
        for (let n = r.u32(); n > 0; n--) functionTypes.push(r.u32());
        break;
      case SECTION.global:
        definedGlobals = r.u32();
        break;
      case SECTION.export:
        for (let n = r.u32(); n > 0; n--) {
          const name = r.name();
          const kind = r.byte();
          exports.push({ name, kind, index: r.u32() });
        }
        break;
      case SECTION.start:
        hasStartSection = true;
        break;
      default:
        break;
    }
  }
  return { sections, types, importedFunctions, importedGlobals, functionTypes, definedGlobals, exports, hasStartSection };
}

/** Signatures of the exported functions, by export name. */
export function exportedFunctions(summary: ModuleSummary): Map<string, FunctionSignature> {
  const out = new Map<string, FunctionSignature>();
  for (const e of summary.exports) {
    if (e.kind !== EXTERNAL_KIND.function) continue;
    const typeIndex = summary.functionTypes[e.index];
    const sig = typeIndex === undefined ? undefined : summary.types[typeIndex];
    if (sig !== undefined) out.set(e.name, sig);
  }
  return out;
}

export function formatSignature(name: string, sig: FunctionSignature): string {
  const results = sig.results.length === 0 ? '()' : sig.results.length === 1 ? sig.results[0] : `(${sig.results.join(', ')})`;
  return `${name}(${sig.params.join(', ')}) -> ${results}`;
}
