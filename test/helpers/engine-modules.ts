/**
 * A WebAssembly builder for engine tests that need several functions with parameters, results and locals
 * (reactor calls, gas counting, instruction decoding): more general than buildModule in engine-wasm.ts.
 */
import { sleb, uleb } from './engine-wasm.js';

export const T = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b, funcref: 0x70, externref: 0x6f } as const;

export interface FnSpec {
  readonly params?: readonly number[];
  readonly results?: readonly number[];
  /** Local groups: [count, type]. */
  readonly locals?: readonly (readonly [number, number])[];
  /** Instructions without the final `end`. */
  readonly body: readonly number[];
  readonly export?: string;
}

export interface ImportSpec {
  readonly module: string;
  readonly name: string;
  readonly params?: readonly number[];
  readonly results?: readonly number[];
}

export interface ModuleSpec {
  readonly imports?: readonly ImportSpec[];
  readonly fns: readonly FnSpec[];
  /** Extra function types (for multi-value block types); their indices follow the functions' own types. */
  readonly extraTypes?: readonly { params: readonly number[]; results: readonly number[] }[];
  readonly memory?: { min: number; max?: number };
  /** A funcref table of this size. */
  readonly table?: number;
  /** Passive data segments (enables memory.init / data.drop; adds the data count section). */
  readonly passiveData?: readonly Uint8Array[];
  /** Active data segments in memory 0. */
  readonly data?: readonly { offset: number; bytes: Uint8Array }[];
  /** Functions (absolute indices) declared for ref.func. */
  readonly declare?: readonly number[];
  readonly globals?: readonly { type: number; mutable: boolean; init: readonly number[] }[];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function functype(params: readonly number[], results: readonly number[]): number[] {
  return [0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))];
}

/** Index of the first extra type (for block types that refer to a type index). */
export function extraTypeIndex(spec: ModuleSpec, n = 0): number {
  return (spec.imports?.length ?? 0) + spec.fns.length + n;
}

export function build(spec: ModuleSpec): Uint8Array {
  const imports = spec.imports ?? [];
  const types = [
    ...imports.map((i) => functype(i.params ?? [], i.results ?? [])),
    ...spec.fns.map((f) => functype(f.params ?? [], f.results ?? [])),
    ...(spec.extraTypes ?? []).map((t) => functype(t.params, t.results)),
  ];
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  out.push(...section(1, vec(types)));
  if (imports.length > 0) out.push(...section(2, vec(imports.map((imp, i) => [...name(imp.module), ...name(imp.name), 0x00, ...uleb(i)]))));
  out.push(...section(3, vec(spec.fns.map((_, i) => uleb(imports.length + i)))));
  if (spec.table !== undefined) out.push(...section(4, vec([[0x70, 0x00, ...uleb(spec.table)]])));
  if (spec.memory !== undefined) {
    const { min, max } = spec.memory;
    out.push(...section(5, vec([max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)]])));
  }
  if (spec.globals !== undefined) {
    out.push(...section(6, vec(spec.globals.map((g) => [g.type, g.mutable ? 1 : 0, ...g.init, 0x0b]))));
  }
  const exports: number[][] = [];
  spec.fns.forEach((f, i) => {
    if (f.export !== undefined) exports.push([...name(f.export), 0x00, ...uleb(imports.length + i)]);
  });
  if (spec.memory !== undefined) exports.push([...name('memory'), 0x02, 0x00]);
  out.push(...section(7, vec(exports)));
  if (spec.declare !== undefined && spec.declare.length > 0) {
    out.push(...section(9, vec([[0x03, 0x00, ...vec(spec.declare.map((f) => uleb(f)))]])));
  }
  const passive = spec.passiveData ?? [];
  const active = spec.data ?? [];
  if (passive.length > 0) out.push(...section(12, uleb(passive.length + active.length)));
  out.push(
    ...section(
      10,
      vec(
        spec.fns.map((f) => {
          const locals = vec((f.locals ?? []).map(([n, t]) => [...uleb(n), t]));
          const body = [...locals, ...f.body, 0x0b];
          return [...uleb(body.length), ...body];
        }),
      ),
    ),
  );
  if (passive.length + active.length > 0) {
    out.push(
      ...section(
        11,
        vec([
          ...active.map((d) => [0x00, 0x41, ...sleb(d.offset), 0x0b, ...uleb(d.bytes.length), ...d.bytes]),
          ...passive.map((d) => [0x01, ...uleb(d.length), ...d]),
        ]),
      ),
    );
  }
  return new Uint8Array(out);
}

/** Common instruction encodings. */
export const I = {
  end: 0x0b,
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  i64: (v: number) => [0x42, ...sleb(v)],
  call: (f: number) => [0x10, ...uleb(f)],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  /** block/loop/if with an empty block type. */
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  else: [0x05],
};
