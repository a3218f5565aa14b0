/**
 * Helpers for engine and WASI tests: a tiny WebAssembly binary builder for modules the examples do not cover
 * (missing imports, ENOSYS stubs, print-then-spin), and a runner that collects a run's output.
 */
import { readFileSync } from 'node:fs';

import type { CompiledModule, Engine, RunRequest, RunResult } from '../../runner-proto/src/engine/index.js';
import { example } from './paths.js';

export const I32 = 0x7f;
export const I64 = 0x7e;

export interface FuncType {
  readonly params: readonly number[];
  readonly results: readonly number[];
}

export interface TinyModule {
  readonly imports?: readonly { module: string; name: string; type: FuncType }[];
  readonly memory?: { min: number; max?: number };
  /** Body of an exported `_start () -> ()` (no locals), without the final `end`. */
  readonly start?: readonly number[];
  /** Name to export the function under (default `_start`). */
  readonly startName?: string;
  /** Active data segments in memory 0. */
  readonly data?: readonly { offset: number; bytes: Uint8Array }[];
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

/** Signed LEB128 for i32.const operands. */
export function sleb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    if ((rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
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

export const op = {
  unreachable: [0x00],
  drop: [0x1a],
  call: (index: number) => [0x10, ...uleb(index)],
  i32: (value: number) => [0x41, ...sleb(value)],
  /** `loop br 0 end`: spins forever. */
  spin: [0x03, 0x40, 0x0c, 0x00, 0x0b],
};

export function buildModule(spec: TinyModule): Uint8Array {
  const imports = spec.imports ?? [];
  const types: FuncType[] = [...imports.map((i) => i.type), { params: [], results: [] }];
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  out.push(...section(1, vec(types.map((t) => [0x60, ...vec(t.params.map((p) => [p])), ...vec(t.results.map((r) => [r]))]))));
  if (imports.length > 0) {
    out.push(...section(2, vec(imports.map((imp, i) => [...name(imp.module), ...name(imp.name), 0x00, ...uleb(i)]))));
  }
  if (spec.start !== undefined) out.push(...section(3, vec([uleb(types.length - 1)])));
  if (spec.memory !== undefined) {
    const { min, max } = spec.memory;
    out.push(...section(5, vec([max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)]])));
  }
  const exports: number[][] = [];
  if (spec.start !== undefined) exports.push([...name(spec.startName ?? '_start'), 0x00, ...uleb(imports.length)]);
  if (spec.memory !== undefined) exports.push([...name('memory'), 0x02, 0x00]);
  if (exports.length > 0) out.push(...section(7, vec(exports)));
  if (spec.start !== undefined) {
    const body = [0x00, ...spec.start, 0x0b];
    out.push(...section(10, vec([[...uleb(body.length), ...body]])));
  }
  if (spec.data !== undefined && spec.data.length > 0) {
    out.push(
      ...section(
        11,
        vec(spec.data.map((d) => [0x00, ...op.i32(d.offset), 0x0b, ...uleb(d.bytes.length), ...d.bytes])),
      ),
    );
  }
  return new Uint8Array(out);
}

const WASI = 'wasi_snapshot_preview1';

/** fd_write(1, iov @0 -> "text" @16) once, then spin: proves output written just before a kill is delivered. */
export function printThenSpin(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const iov = new Uint8Array(8);
  new DataView(iov.buffer).setUint32(0, 16, true);
  new DataView(iov.buffer).setUint32(4, bytes.length, true);
  return buildModule({
    imports: [{ module: WASI, name: 'fd_write', type: { params: [I32, I32, I32, I32], results: [I32] } }],
    memory: { min: 1 },
    data: [
      { offset: 0, bytes: iov },
      { offset: 16, bytes },
    ],
    start: [...op.i32(1), ...op.i32(0), ...op.i32(1), ...op.i32(8), ...op.call(0), ...op.drop, ...op.spin],
  });
}

export function exampleBytes(name: string, file = name): Uint8Array {
  return readFileSync(example(name, file));
}

export interface Collected {
  readonly result: RunResult;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr chunks in the order they were delivered. */
  readonly order: readonly { fd: 1 | 2; text: string }[];
  readonly stdoutBytes: number;
}

const decoder = new TextDecoder();

export function requestOf(argv0: string, extra: Partial<RunRequest> = {}): RunRequest {
  return { argv0, args: [], env: {}, ...extra };
}

/** Runs and collects; `onStart` gets the running instance (to kill it). */
export async function runCollect(
  engine: Engine,
  module: CompiledModule,
  request: RunRequest,
  onStart?: (instance: ReturnType<Engine['run']>) => void,
): Promise<Collected> {
  const order: { fd: 1 | 2; text: string }[] = [];
  let stdoutBytes = 0;
  const instance = engine.run(module, request, {
    onStdout: (chunk) => {
      stdoutBytes += chunk.length;
      order.push({ fd: 1, text: decoder.decode(chunk) });
    },
    onStderr: (chunk) => order.push({ fd: 2, text: decoder.decode(chunk) }),
  });
  onStart?.(instance);
  const result = await instance.result;
  const join = (fd: 1 | 2): string =>
    order
      .filter((c) => c.fd === fd)
      .map((c) => c.text)
      .join('');
  return { result, stdout: join(1), stderr: join(2), order, stdoutBytes };
}
