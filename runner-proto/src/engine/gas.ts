/**
 * Deterministic gas for V8: the bytecode is rewritten at load so that it counts its own instructions.
 *
 * What counts: every instruction in the original function bodies counts 1, structured-control markers included
 * (`block`, `loop`, `if`, `else`, `end`), prefixed instructions (0xFC, 0xFD, 0xFE) too. Inserted code counts 0.
 * Constant expressions (global initialisers, segment offsets) and the wasm start function run before any
 * budget is set and are not counted (wasi-libc modules have no start function).
 *
 * How: each function body is cut into straight-line runs. A run ends after an instruction that branches
 * (`br`, `br_if`, `br_table`, `br_on_null`, `br_on_non_null`, `return`, `return_call*`, `unreachable`, `throw`,
 * `rethrow`, `throw_ref`), after one whose next instruction can be entered from elsewhere (`loop`: its body is a
 * branch target; `if`, `else`, `catch`, `catch_all`: their arms are entered by a jump) and after an `end` that is
 * a join point (the end of an `if`, of a `try` with handlers, of a block some branch targets, of the function).
 * `block`, `try`, calls and the `end` of a loop or of an untargeted block do not end a run: control only falls
 * through them (a call comes back to the next instruction). Every branch target is a run start, so whenever a
 * run's first instruction executes, so does the whole run (unless it traps or exits, which ends the instance
 * anyway). At each run start the instrumented code charges the run's length N, through a scratch i64 local $t
 * added to the function:
 *
 *     global.get $left; i64.const N; i64.sub; local.tee $t; global.set $left
 *     local.get $t; i64.const 0; i64.lt_s
 *     if; local.get $t; i64.const N; i64.add; global.set $left; i32.const 1; global.set $out; unreachable; end
 *
 * so the count is exact and deterministic, and a run that does not fit in the remaining budget never starts
 * (the failing charge is undone before the trap): `instructions` = budget - left is the number of original
 * instructions executed (or pre-paid for a run cut short by a trap or proc_exit). `$left` (i64, budgets up to
 * 2^63-1) and `$out` (i32, set to 1 on exhaustion, which is how the host tells gas from a module's own
 * `unreachable`) are new mutable globals appended after the module's own (so no index shifts) and exported as
 * GAS_LEFT_EXPORT / GAS_OUT_EXPORT for the host to set and read. `$left` starts at 2^63-1 so code run at
 * instantiation does not trap before the host sets a budget.
 */
import {
  ByteReader,
  EXTERNAL_KIND,
  SECTION,
  type Section,
  sectionRank,
  sleb,
  summarize,
  uleb,
  WasmFormatError,
} from './wasm-binary.js';

export const GAS_LEFT_EXPORT = '__runner_gas_left';
export const GAS_OUT_EXPORT = '__runner_gas_out';
/** The largest budget (and the counter's value when no budget is set): 2^63-1. */
export const GAS_UNLIMITED = 0x7fff_ffff_ffff_ffffn;

/** Instructions after which a new run always starts (see the file comment); `end` and `delegate` depend. */
const ENDS_RUN = new Uint8Array(256);
for (const op of [0x00, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13, 0x15, 0x19, 0xd4, 0xd6]) {
  ENDS_RUN[op] = 1;
}

/** Control frames, for deciding whether an `end` is a join point. */
const FRAME_BLOCK = 0;
const FRAME_LOOP = 1;
const FRAME_JOIN = 2; // if/else, try with handlers, the function body: their end is always a join

interface Frame {
  kind: number;
  /** Some branch targets this frame's end. */
  targeted: boolean;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

function memarg(r: ByteReader): void {
  const align = r.u32();
  if ((align & 0x40) !== 0) r.u32(); // multi-memory: a memory index follows
  r.skipLeb(10); // offset (u64 for memory64)
}

/** Block types: empty (0x40), one value type, or a type index (s33). */
function blockType(r: ByteReader): void {
  const first = r.bytes[r.pos];
  if (first === 0x63 || first === 0x64) throw new WasmFormatError('typed function references are not supported', r.pos);
  r.skipLeb(5);
}

function simd(r: ByteReader, at: number): void {
  const sub = r.u32();
  if (sub <= 0x0b || sub === 0x5c || sub === 0x5d) memarg(r);
  else if (sub === 0x0c || sub === 0x0d) r.skip(16); // v128.const, i8x16.shuffle
  else if (sub >= 0x15 && sub <= 0x22) r.skip(1); // extract/replace lane
  else if (sub >= 0x54 && sub <= 0x5b) {
    memarg(r); // load/store lane
    r.skip(1);
  } else if (sub > 0x113) throw new WasmFormatError(`unknown SIMD instruction 0xfd ${sub}`, at);
  // Every other SIMD (and relaxed-SIMD) instruction has no immediates.
}

function misc(r: ByteReader, at: number): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  switch (sub) {
    case 8: // memory.init data mem
    case 10: // memory.copy mem mem
    case 12: // table.init elem table
    case 14: // table.copy table table
      r.u32();
      r.u32();
      return;
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32();
      return;
    default:
      throw new WasmFormatError(`unknown instruction 0xfc ${sub}`, at);
  }
}

function atomic(r: ByteReader, at: number): void {
  const sub = r.u32();
  if (sub === 0x03) r.skip(1); // atomic.fence
  else if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) memarg(r);
  else throw new WasmFormatError(`unknown atomic instruction 0xfe ${sub}`, at);
}

/**
 * Reads one instruction, immediates included, and returns its first opcode byte. Covers MVP, sign extension,
 * saturating conversions, bulk memory, reference types, multi-value block types, SIMD (and relaxed SIMD),
 * threads, tail calls and the legacy exception-handling instructions.
 */
export function readInstruction(r: ByteReader): number {
  const at = r.pos;
  const op = r.byte();
  if (op >= 0x45 && op <= 0xc4) return op; // numeric, sign extension: no immediates
  switch (op) {
    case 0x00: // unreachable
    case 0x01: // nop
    case 0x05: // else
    case 0x0a: // throw_ref
    case 0x0b: // end
    case 0x0f: // return
    case 0x19: // catch_all
    case 0x1a: // drop
    case 0x1b: // select
    case 0xd1: // ref.is_null
    case 0xd3: // ref.as_non_null
      return op;
    case 0x02: // block
    case 0x03: // loop
    case 0x04: // if
    case 0x06: // try
      blockType(r);
      return op;
    case 0x07: // catch tag
    case 0x08: // throw tag
    case 0x09: // rethrow depth
    case 0x0c: // br
    case 0x0d: // br_if
    case 0x10: // call
    case 0x12: // return_call
    case 0x14: // call_ref
    case 0x15: // return_call_ref
    case 0x18: // delegate
    case 0x20: // local.get
    case 0x21: // local.set
    case 0x22: // local.tee
    case 0x23: // global.get
    case 0x24: // global.set
    case 0x25: // table.get
    case 0x26: // table.set
    case 0x3f: // memory.size
    case 0x40: // memory.grow
    case 0xd2: // ref.func
    case 0xd4: // br_on_null
    case 0xd6: // br_on_non_null
      r.u32();
      return op;
    case 0x0e: {
      // br_table: vec(label) default
      for (let n = r.u32(); n > 0; n--) r.u32();
      r.u32();
      return op;
    }
    case 0x11: // call_indirect type table
    case 0x13: // return_call_indirect
      r.u32();
      r.u32();
      return op;
    case 0x1c: {
      // select with types
      for (let n = r.u32(); n > 0; n--) r.valueType();
      return op;
    }
    case 0x41:
      r.skipLeb(5);
      return op;
    case 0x42:
      r.skipLeb(10);
      return op;
    case 0x43:
      r.skip(4);
      return op;
    case 0x44:
      r.skip(8);
      return op;
    case 0xd0: // ref.null heaptype
      r.skipLeb(5);
      return op;
    case 0xfc:
      misc(r, at);
      return op;
    case 0xfd:
      simd(r, at);
      return op;
    case 0xfe:
      atomic(r, at);
      return op;
    default:
      if (op >= 0x28 && op <= 0x3e) {
        memarg(r);
        return op;
      }
      throw new WasmFormatError(`unsupported instruction ${hex(op)}`, at);
  }
}

export interface Run {
  /** Offset in the module bytes where the run starts (where its charge goes). */
  readonly at: number;
  /** Instructions in the run. */
  readonly cost: number;
}

/** Reads a branch depth immediate without moving past it. */
function peekU32(r: ByteReader, at: number): number {
  const saved = r.pos;
  r.pos = at;
  const v = r.u32();
  r.pos = saved;
  return v;
}

/**
 * Splits one function body (`start` = after its size prefix) into runs. Also returns where the code begins and
 * how many locals the body declares (the scratch local goes after them).
 */
export function bodyRuns(bytes: Uint8Array, start: number, end: number, perInstruction = false): { codeStart: number; locals: number; runs: Run[] } {
  const r = new ByteReader(bytes, start, end);
  let locals = 0;
  for (let groups = r.u32(); groups > 0; groups--) {
    locals += r.u32();
    r.valueType();
  }
  const codeStart = r.pos;
  const runs: Run[] = [];
  const frames: Frame[] = [{ kind: FRAME_JOIN, targeted: true }];
  const target = (depth: number): void => {
    const f = frames[frames.length - 1 - depth];
    if (f !== undefined) f.targeted = true;
  };
  let runStart = codeStart;
  let cost = 0;
  while (!r.done) {
    const at = r.pos;
    const op = readInstruction(r);
    cost++;
    let ends = ENDS_RUN[op] === 1;
    switch (op) {
      case 0x02: // block
        frames.push({ kind: FRAME_BLOCK, targeted: false });
        break;
      case 0x06: // try: a block until a handler appears
        frames.push({ kind: FRAME_BLOCK, targeted: false });
        break;
      case 0x03: // loop
        frames.push({ kind: FRAME_LOOP, targeted: false });
        break;
      case 0x04: // if
        frames.push({ kind: FRAME_JOIN, targeted: false });
        break;
      case 0x05: // else
      case 0x07: // catch
      case 0x19: {
        // catch_all
        const f = frames[frames.length - 1];
        if (f !== undefined) f.kind = FRAME_JOIN;
        break;
      }
      case 0x0b: // end
      case 0x18: {
        // delegate closes a try like end does
        const f = frames.pop();
        ends = f === undefined || f.kind === FRAME_JOIN || (f.kind === FRAME_BLOCK && f.targeted);
        break;
      }
      case 0x0c: // br
      case 0x0d: // br_if
      case 0xd4: // br_on_null
      case 0xd6: // br_on_non_null
        target(peekU32(r, at + 1));
        break;
      case 0x0e: {
        // br_table: every label
        const t = new ByteReader(bytes, at + 1, r.pos);
        for (let n = t.u32(); n > 0; n--) target(t.u32());
        target(t.u32());
        break;
      }
      default:
        break;
    }
    if (ends || perInstruction) {
      runs.push({ at: runStart, cost });
      runStart = r.pos;
      cost = 0;
    }
  }
  if (cost !== 0 || frames.length !== 0) throw new WasmFormatError('function body does not end with `end`', end);
  return { codeStart, locals, runs };
}

export interface GasModule {
  readonly bytes: Uint8Array;
  readonly functions: number;
  /** Charge points inserted (runs). */
  readonly runs: number;
}

class Out {
  private chunks: Uint8Array[] = [];
  length = 0;

  push(bytes: Uint8Array | readonly number[]): void {
    const chunk = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function chargeCode(left: number, out: number, scratch: number, cost: number): Uint8Array {
  const g = uleb(left);
  const f = uleb(out);
  const t = uleb(scratch);
  const n = sleb(cost);
  return Uint8Array.from([
    0x23, ...g, 0x42, ...n, 0x7d, 0x22, ...t, 0x24, ...g, // left -= N (kept in $t)
    0x20, ...t, 0x42, 0x00, 0x53, // $t < 0 ?
    0x04, 0x40, // if
    0x20, ...t, 0x42, ...n, 0x7c, 0x24, ...g, // left += N: the run that did not fit is not counted
    0x41, 0x01, 0x24, ...f, 0x00, // $out = 1; unreachable
    0x0b, // end
  ]);
}

function rewriteCode(
  bytes: Uint8Array,
  section: Section,
  params: readonly number[],
  left: number,
  outGlobal: number,
  perInstruction: boolean,
): { content: Uint8Array; functions: number; runs: number } {
  const r = new ByteReader(bytes, section.contentStart, section.end);
  const count = r.u32();
  const out = new Out();
  out.push(uleb(count));
  let runs = 0;
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const start = r.pos;
    r.skip(size);
    const parsed = bodyRuns(bytes, start, r.pos, perInstruction);
    const paramCount = params[i];
    if (paramCount === undefined) throw new WasmFormatError(`function body ${i} has no declared type`);
    const scratch = paramCount + parsed.locals;
    const body = new Out();
    // Locals: the original groups plus one group of a single i64 (the scratch local).
    const groups = new ByteReader(bytes, start, parsed.codeStart);
    const groupCount = groups.u32();
    body.push(uleb(groupCount + 1));
    body.push(bytes.subarray(groups.pos, parsed.codeStart));
    body.push([0x01, 0x7e]);
    const charges = new Map<number, Uint8Array>();
    const list = parsed.runs;
    for (let k = 0; k < list.length; k++) {
      const run = list[k] as Run;
      const next = k + 1 < list.length ? (list[k + 1] as Run).at : r.pos;
      let charge = charges.get(run.cost);
      if (charge === undefined) {
        charge = chargeCode(left, outGlobal, scratch, run.cost);
        charges.set(run.cost, charge);
      }
      body.push(charge);
      body.push(bytes.subarray(run.at, next));
      runs++;
    }
    out.push(uleb(body.length));
    out.push(body.bytes());
  }
  return { content: out.bytes(), functions: count, runs };
}

function withEntries(bytes: Uint8Array, section: Section | undefined, added: readonly number[][]): Uint8Array {
  const out = new Out();
  if (section === undefined) {
    out.push(uleb(added.length));
  } else {
    const r = new ByteReader(bytes, section.contentStart, section.end);
    const count = r.u32();
    out.push(uleb(count + added.length));
    out.push(bytes.subarray(r.pos, section.end));
  }
  for (const entry of added) out.push(entry);
  return out.bytes();
}

function nameBytes(text: string): number[] {
  const b = [...new TextEncoder().encode(text)];
  return [...uleb(b.length), ...b];
}

/**
 * Returns the module rewritten to count its instructions (see the file comment). Throws WasmFormatError for
 * bytes it cannot follow, or a module that already exports one of our names.
 */
export interface GasOptions {
  /**
   * Charge before every single instruction instead of per run. Much slower; the totals are the same, which is
   * what the tests use it to prove.
   */
  readonly perInstruction?: boolean;
}

export function instrumentGas(bytes: Uint8Array, options: GasOptions = {}): GasModule {
  const summary = summarize(bytes);
  for (const e of summary.exports) {
    if (e.name === GAS_LEFT_EXPORT || e.name === GAS_OUT_EXPORT) throw new WasmFormatError(`the module already exports ${e.name}`);
  }
  const left = summary.importedGlobals + summary.definedGlobals;
  const outGlobal = left + 1;
  const globals = [
    [0x7e, 0x01, 0x42, ...sleb(GAS_UNLIMITED), 0x0b], // (mut i64) = 2^63-1 until the host sets a budget
    [0x7f, 0x01, 0x41, 0x00, 0x0b], // (mut i32) = 0
  ];
  const exports = [
    [...nameBytes(GAS_LEFT_EXPORT), EXTERNAL_KIND.global, ...uleb(left)],
    [...nameBytes(GAS_OUT_EXPORT), EXTERNAL_KIND.global, ...uleb(outGlobal)],
  ];
  const replaced = new Map<number, Uint8Array>();
  let functions = 0;
  let runs = 0;
  const find = (id: number): Section | undefined => summary.sections.find((s) => s.id === id);
  replaced.set(SECTION.global, withEntries(bytes, find(SECTION.global), globals));
  replaced.set(SECTION.export, withEntries(bytes, find(SECTION.export), exports));
  const code = find(SECTION.code);
  if (code !== undefined) {
    const params = summary.functionTypes.slice(summary.importedFunctions).map((t) => summary.types[t]?.params.length ?? -1);
    if (params.includes(-1)) throw new WasmFormatError('a function has a type that is not a function type');
    const rewritten = rewriteCode(bytes, code, params, left, outGlobal, options.perInstruction ?? false);
    replaced.set(SECTION.code, rewritten.content);
    functions = rewritten.functions;
    runs = rewritten.runs;
  }

  const out = new Out();
  out.push(bytes.subarray(0, 8));
  const pending = new Map(replaced);
  const emit = (id: number, content: Uint8Array): void => {
    out.push([id, ...uleb(content.length)]);
    out.push(content);
  };
  for (const s of summary.sections) {
    // Sections we add (rather than replace) go just before the first section that must follow them.
    for (const [id, content] of pending) {
      if (find(id) === undefined && s.id !== SECTION.custom && sectionRank(s.id) > sectionRank(id)) {
        emit(id, content);
        pending.delete(id);
      }
    }
    const content = pending.get(s.id);
    if (content !== undefined && s.id !== SECTION.custom) {
      emit(s.id, content);
      pending.delete(s.id);
    } else {
      out.push(bytes.subarray(s.start, s.end));
    }
  }
  for (const [id, content] of [...pending].sort((a, b) => sectionRank(a[0]) - sectionRank(b[0]))) emit(id, content);
  return { bytes: out.bytes(), functions, runs };
}
