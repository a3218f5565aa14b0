import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { formatOffset, malformed, reject } from './errors.js';
import { Reader } from './reader.js';
import type {
  ExportInfo,
  ExternKind,
  FuncSignature,
  ImportInfo,
  Limits,
  MemoryInfo,
  ModuleInfo,
  ModuleKind,
  SectionInfo,
  SectionName,
  ValType,
} from './types.js';

/*
 * A WebAssembly binary parser that reads exactly as much as the checker and the API need, and checks the
 * binary format (spec §5) on the way: header, section framing and order, LEB128 encodings, vector counts,
 * UTF-8 names. Instruction bodies, constant expressions and data are only framed, not decoded: V8 validates
 * them right after this parser in checkModule. Every loop consumes at least one byte per iteration and every
 * count is checked against the bytes that remain, so hostile input costs at most one pass over the file.
 */

const MAGIC = [0x00, 0x61, 0x73, 0x6d] as const;

const SECTION_NAMES: Readonly<Record<number, SectionName>> = {
  0: 'custom',
  1: 'type',
  2: 'import',
  3: 'function',
  4: 'table',
  5: 'memory',
  6: 'global',
  7: 'export',
  8: 'start',
  9: 'element',
  10: 'code',
  11: 'data',
  12: 'datacount',
  13: 'tag',
};

// Ids are not in order: datacount (12) must precede code (10), and tag (13) sits between memory and global.
const SECTION_RANK: Readonly<Record<number, number>> = {
  1: 1,
  2: 2,
  3: 3,
  4: 4,
  5: 5,
  13: 6,
  6: 7,
  7: 8,
  8: 9,
  9: 10,
  12: 11,
  10: 12,
  11: 13,
};

const EXTERN_KINDS: readonly ExternKind[] = ['function', 'table', 'memory', 'global', 'tag'];

const NUM_TYPES: Readonly<Record<number, ValType>> = {
  0x7f: 'i32',
  0x7e: 'i64',
  0x7d: 'f32',
  0x7c: 'f64',
  0x7b: 'v128',
};

// Abstract heap types by their one-byte encoding, with the shorthand of their nullable reference type.
const HEAP_TYPES: Readonly<Record<number, { heap: string; short: ValType }>> = {
  0x70: { heap: 'func', short: 'funcref' },
  0x6f: { heap: 'extern', short: 'externref' },
  0x6e: { heap: 'any', short: 'anyref' },
  0x6d: { heap: 'eq', short: 'eqref' },
  0x6c: { heap: 'i31', short: 'i31ref' },
  0x6b: { heap: 'struct', short: 'structref' },
  0x6a: { heap: 'array', short: 'arrayref' },
  0x69: { heap: 'exn', short: 'exnref' },
  0x73: { heap: 'nofunc', short: 'nullfuncref' },
  0x72: { heap: 'noextern', short: 'nullexternref' },
  0x71: { heap: 'none', short: 'nullref' },
  0x74: { heap: 'noexn', short: 'nullexnref' },
};

type TypeEntry = { readonly form: 'func'; readonly signature: FuncSignature } | { readonly form: 'struct' | 'array' };

interface State {
  readonly bytes: Uint8Array;
  readonly sections: SectionInfo[];
  readonly customSections: string[];
  readonly types: TypeEntry[];
  readonly imports: ImportInfo[];
  /** Type index of every function, imported ones first: the function index space. */
  readonly funcTypes: number[];
  readonly memories: MemoryInfo[];
  readonly exports: ExportInfo[];
  tableCount: number;
  globalCount: number;
  tagCount: number;
  functionSection: { readonly offset: number; readonly count: number } | null;
  codeSeen: boolean;
  start: number | null;
}

export function inspectModule(bytes: Uint8Array): ModuleInfo {
  if (!(bytes instanceof Uint8Array)) {
    throw new AgentError('AGT_ERR_BAD_REQUEST', `module: expected the module bytes as a Uint8Array, got ${typeof bytes}`, {
      rule: 'input-type',
    });
  }
  const version = readHeader(bytes);
  const st: State = {
    bytes,
    sections: [],
    customSections: [],
    types: [],
    imports: [],
    funcTypes: [],
    memories: [],
    exports: [],
    tableCount: 0,
    globalCount: 0,
    tagCount: 0,
    functionSection: null,
    codeSeen: false,
    start: null,
  };

  let pos = 8;
  let lastRank = 0;
  let lastName: SectionName | null = null; // last non-custom section, for order messages
  let lastAny: SectionName | null = null;
  const seen = new Map<number, number>();
  while (pos < bytes.length) {
    const offset = pos;
    const id = bytes[pos]!;
    const name = SECTION_NAMES[id];
    if (name === undefined || isZeroPadding(bytes, pos)) throw trailingBytes(bytes, offset, id, lastAny);

    if (id !== 0) {
      const previous = seen.get(id);
      if (previous !== undefined) {
        throw malformed(
          'section-duplicate',
          { section: name, offset },
          `duplicate ${name} section (the first one is at byte ${formatOffset(previous)})`,
        );
      }
      const rank = SECTION_RANK[id]!;
      if (rank < lastRank) {
        throw malformed('section-order', { section: name, offset }, `${name} section must come before the ${lastName} section`);
      }
      seen.set(id, offset);
      lastRank = rank;
    }

    const header = new Reader(bytes, pos + 1, bytes.length, name, 'header');
    const size = header.u32('section size');
    const contentOffset = header.pos;
    if (size > bytes.length - contentOffset) {
      throw malformed(
        'section-size',
        { section: name, offset },
        `declares ${size} bytes of content from byte ${formatOffset(contentOffset)} but the file ends ` +
          `${bytes.length - contentOffset} bytes later, at ${formatOffset(bytes.length)}`,
        { declaredSize: size, available: bytes.length - contentOffset },
      );
    }

    const r = new Reader(bytes, contentOffset, contentOffset + size, name, 'section');
    let customName: string | undefined;
    if (id === 0) {
      customName = r.name('custom section name');
      st.customSections.push(customName);
    } else {
      decodeSection(st, id, r);
    }
    st.sections.push({ id, name, offset, contentOffset, size, ...(customName === undefined ? {} : { customName }) });
    if (id !== 0) lastName = name;
    lastAny = name;
    pos = contentOffset + size;
  }

  const fs = st.functionSection;
  if (fs !== null && fs.count > 0 && !st.codeSeen) {
    throw malformed('code-count', { section: 'function', offset: fs.offset }, `declares ${fs.count} functions but there is no code section`);
  }

  return {
    size: bytes.length,
    version,
    sections: st.sections,
    customSections: st.customSections,
    imports: st.imports,
    exports: st.exports,
    memories: st.memories,
    functionCount: st.funcTypes.length,
    start: st.start,
    kind: kindOf(st.exports),
  };
}

function readHeader(bytes: Uint8Array): number {
  for (let i = 0; i < 4; i++) {
    if (i >= bytes.length) {
      throw malformed('magic', { section: 'header', offset: i }, `file is ${bytes.length} bytes, too short for the magic number \\0asm`);
    }
    if (bytes[i] !== MAGIC[i]) {
      const got = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
      throw malformed('magic', { section: 'header', offset: i }, `expected magic number 00 61 73 6d (\\0asm), found ${got}`);
    }
  }
  if (bytes.length < 8) {
    throw malformed('version', { section: 'header', offset: 4 }, `file is ${bytes.length} bytes, too short for the version field`);
  }
  const version = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
  if (version !== 1) {
    // Components share the magic number and differ here (version 0x0d, layer 1): say so, it is a common mix-up.
    const hint = bytes[6] === 1 && bytes[7] === 0 ? ' (this is a WebAssembly component, not a core module)' : '';
    throw malformed('version', { section: 'header', offset: 4 }, `expected version 1, found ${version}${hint}`, { version });
  }
  return version;
}

/** Two or more zeros: one zero could still be a custom section header cut short, two cannot (no name). */
function isZeroPadding(bytes: Uint8Array, from: number): boolean {
  if (bytes.length - from < 2) return false;
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Bytes after the last section are read as the next section's header, so what decides "garbage" is that
 * they cannot start a section: an unknown id, or nothing but zeros (padding from a block or page-sized copy).
 */
function trailingBytes(bytes: Uint8Array, offset: number, id: number, lastName: SectionName | null): AgentError {
  const n = bytes.length - offset;
  const after = lastName === null ? 'the header' : `the ${lastName} section`;
  const why = isZeroPadding(bytes, offset) ? 'all zero (padding?)' : `byte 0x${id.toString(16).padStart(2, '0')} is not a section id`;
  return malformed('trailing-bytes', { offset }, `${n} unexpected bytes after ${after}: ${why}`, { trailingBytes: n });
}

function decodeSection(st: State, id: number, r: Reader): void {
  switch (id) {
    case 1:
      decodeTypes(st, r);
      break;
    case 2:
      decodeImports(st, r);
      break;
    case 3:
      decodeFunctions(st, r);
      break;
    case 4:
      st.tableCount += r.count('table');
      return; // entries are only counted; V8 checks their encoding
    case 5:
      decodeMemories(st, r);
      break;
    case 6:
      st.globalCount += r.count('global');
      return;
    case 7:
      decodeExports(st, r);
      break;
    case 8:
      decodeStart(st, r);
      break;
    case 10:
      decodeCode(st, r);
      break;
    case 12:
      r.u32('data count');
      break;
    case 13:
      st.tagCount += r.count('tag');
      return;
    default:
      return; // element and data: framed only
  }
  if (r.pos !== r.end) {
    throw malformed(
      'section-content',
      { section: r.section, offset: r.pos },
      `content ends here but the section declares ${r.end - r.pos} more bytes (up to ${formatOffset(r.end)})`,
    );
  }
}

function decodeTypes(st: State, r: Reader): void {
  const n = r.count('type');
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const form = r.u8('type form');
    if (form === 0x4e) {
      // rec group (GC): each member gets its own type index
      const members = r.count('rec group member');
      for (let j = 0; j < members; j++) st.types.push(readSubType(r, r.pos, r.u8('type form')));
    } else {
      st.types.push(readSubType(r, at, form));
    }
  }
}

function readSubType(r: Reader, at: number, form: number): TypeEntry {
  if (form === 0x50 || form === 0x4f) {
    const supers = r.count('supertype');
    for (let i = 0; i < supers; i++) r.u32('supertype index');
    const innerAt = r.pos;
    return readCompositeType(r, innerAt, r.u8('type form'));
  }
  return readCompositeType(r, at, form);
}

function readCompositeType(r: Reader, at: number, form: number): TypeEntry {
  switch (form) {
    case 0x60: {
      const params = readValTypes(r, 'parameter');
      const results = readValTypes(r, 'result');
      return { form: 'func', signature: { params, results } };
    }
    case 0x5f: {
      const fields = r.count('struct field', 2);
      for (let i = 0; i < fields; i++) readFieldType(r);
      return { form: 'struct' };
    }
    case 0x5e:
      readFieldType(r);
      return { form: 'array' };
    default:
      throw malformed('type-form', r.where(at), `0x${form.toString(16)} is not a type form (0x60 func, 0x5f struct, 0x5e array)`);
  }
}

function readFieldType(r: Reader): void {
  const at = r.pos;
  const b = r.bytes[at];
  if (at < r.end && (b === 0x78 || b === 0x77)) r.pos++; // packed i8 / i16
  else readValType(r, 'field type');
  readMutability(r);
}

function readValTypes(r: Reader, what: string): ValType[] {
  const n = r.count(what);
  const out: ValType[] = [];
  for (let i = 0; i < n; i++) out.push(readValType(r, `${what} type`));
  return out;
}

function readValType(r: Reader, what: string): ValType {
  const at = r.pos;
  const b = r.u8(what);
  const num = NUM_TYPES[b];
  if (num !== undefined) return num;
  const abstract = HEAP_TYPES[b];
  if (abstract !== undefined) return abstract.short;
  if (b === 0x63 || b === 0x64) {
    const nullable = b === 0x63;
    const hb = r.u8('heap type');
    const ht = HEAP_TYPES[hb];
    if (ht !== undefined) return nullable ? ht.short : `(ref ${ht.heap})`;
    r.pos--; // not an abstract heap type: re-read the byte as the start of a type index
    const idx = r.s33('heap type');
    if (idx < 0) throw malformed('value-type', r.where(at + 1), `heap type ${idx} is neither a known abstract heap type nor a type index`);
    return nullable ? `(ref null ${idx})` : `(ref ${idx})`;
  }
  throw malformed('value-type', r.where(at), `${what} 0x${b.toString(16)} is not a value type`);
}

function readMutability(r: Reader): boolean {
  const at = r.pos;
  const m = r.u8('mutability');
  if (m > 1) throw malformed('mutability', r.where(at), `mutability flag 0x${m.toString(16)} must be 0 or 1`);
  return m === 1;
}

function readLimits(r: Reader, kind: 'memory' | 'table'): Limits {
  const at = r.pos;
  const flags = r.u8(`${kind} limits flags`);
  // bit 0: has maximum, bit 1: shared (memories only), bit 2: 64-bit
  const allowed = kind === 'memory' ? 0x07 : 0x05;
  if (flags & ~allowed) {
    throw malformed('limits', r.where(at), `${kind} limits flags 0x${flags.toString(16)} are not valid`);
  }
  const is64 = (flags & 0x04) !== 0;
  const read = (what: string): number => (is64 ? r.u64(what) : r.u32(what));
  const min = read(`${kind} minimum`);
  const max = flags & 0x01 ? read(`${kind} maximum`) : null;
  return { min, max, shared: (flags & 0x02) !== 0, is64 };
}

function checkFuncType(st: State, r: Reader, at: number, typeIndex: number, what: string): FuncSignature {
  const entry = st.types[typeIndex];
  if (entry === undefined) {
    throw reject('AGT_ERR_WASM_INVALID', 'type-index', r.where(at), `${what} refers to type ${typeIndex} but the module defines ${st.types.length} types`);
  }
  if (entry.form !== 'func') {
    throw reject('AGT_ERR_WASM_INVALID', 'type-index', r.where(at), `${what} refers to type ${typeIndex}, which is a ${entry.form} type, not a function type`);
  }
  return entry.signature;
}

function decodeImports(st: State, r: Reader): void {
  const n = r.count('import', 3);
  for (let i = 0; i < n; i++) {
    const offset = r.pos;
    const module = r.name('import module name');
    const name = r.name('import name');
    const kindAt = r.pos;
    const k = r.u8('import kind');
    const kind = EXTERN_KINDS[k];
    if (kind === undefined) throw malformed('import-kind', r.where(kindAt), `import kind 0x${k.toString(16)} is not valid`);
    switch (kind) {
      case 'function': {
        const at = r.pos;
        const typeIndex = r.u32('type index');
        const signature = checkFuncType(st, r, at, typeIndex, `function import ${JSON.stringify(module)}.${JSON.stringify(name)}`);
        st.funcTypes.push(typeIndex);
        st.imports.push({ module, name, kind, offset, typeIndex, signature });
        break;
      }
      case 'table': {
        readValType(r, 'table element type');
        const limits = readLimits(r, 'table');
        st.tableCount++;
        st.imports.push({ module, name, kind, offset, limits });
        break;
      }
      case 'memory': {
        const limits = readLimits(r, 'memory');
        st.imports.push({ module, name, kind, offset, limits });
        st.memories.push({
          index: st.memories.length,
          min: limits.min,
          max: limits.max,
          shared: limits.shared,
          memory64: limits.is64,
          imported: true,
          offset,
          importedFrom: { module, name },
        });
        break;
      }
      case 'global':
        readValType(r, 'global type');
        readMutability(r);
        st.globalCount++;
        st.imports.push({ module, name, kind, offset });
        break;
      case 'tag': {
        const typeIndex = readTagType(st, r);
        st.tagCount++;
        st.imports.push({ module, name, kind, offset, typeIndex });
        break;
      }
    }
  }
}

function readTagType(st: State, r: Reader): number {
  const at = r.pos;
  const attribute = r.u8('tag attribute');
  if (attribute !== 0) throw malformed('tag-attribute', r.where(at), `tag attribute 0x${attribute.toString(16)} must be 0 (exception)`);
  const idxAt = r.pos;
  const typeIndex = r.u32('tag type index');
  checkFuncType(st, r, idxAt, typeIndex, 'tag');
  return typeIndex;
}

function decodeFunctions(st: State, r: Reader): void {
  const offset = r.pos;
  const n = r.count('function');
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const typeIndex = r.u32('type index');
    checkFuncType(st, r, at, typeIndex, `function ${st.funcTypes.length}`);
    st.funcTypes.push(typeIndex);
  }
  st.functionSection = { offset, count: n };
}

function decodeMemories(st: State, r: Reader): void {
  const n = r.count('memory', 2);
  for (let i = 0; i < n; i++) {
    const offset = r.pos;
    const limits = readLimits(r, 'memory');
    st.memories.push({
      index: st.memories.length,
      min: limits.min,
      max: limits.max,
      shared: limits.shared,
      memory64: limits.is64,
      imported: false,
      offset,
    });
  }
}

function decodeExports(st: State, r: Reader): void {
  const n = r.count('export', 3);
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const offset = r.pos;
    const name = r.name('export name');
    const kindAt = r.pos;
    const k = r.u8('export kind');
    const kind = EXTERN_KINDS[k];
    if (kind === undefined) throw malformed('export-kind', r.where(kindAt), `export kind 0x${k.toString(16)} is not valid`);
    const indexAt = r.pos;
    const index = r.u32('export index');
    const limit = {
      function: st.funcTypes.length,
      table: st.tableCount,
      memory: st.memories.length,
      global: st.globalCount,
      tag: st.tagCount,
    }[kind];
    if (index >= limit) {
      throw reject(
        'AGT_ERR_WASM_INVALID',
        'export-index',
        r.where(indexAt),
        `export ${JSON.stringify(name)} refers to ${kind} ${index} but the module has ${limit}`,
      );
    }
    if (names.has(name)) {
      throw reject('AGT_ERR_WASM_INVALID', 'export-duplicate', r.where(offset), `export name ${JSON.stringify(name)} is used twice`);
    }
    names.add(name);
    const signature = kind === 'function' ? funcSignature(st, index) : undefined;
    st.exports.push({ name, kind, index, offset, ...(signature === undefined ? {} : { signature }) });
  }
}

function funcSignature(st: State, funcIndex: number): FuncSignature | undefined {
  const typeIndex = st.funcTypes[funcIndex];
  const entry = typeIndex === undefined ? undefined : st.types[typeIndex];
  return entry?.form === 'func' ? entry.signature : undefined;
}

function decodeStart(st: State, r: Reader): void {
  const at = r.pos;
  const index = r.u32('start function index');
  if (index >= st.funcTypes.length) {
    throw reject(
      'AGT_ERR_WASM_INVALID',
      'start-function',
      r.where(at),
      `start function ${index} does not exist (the module has ${st.funcTypes.length} functions)`,
    );
  }
  st.start = index;
}

function decodeCode(st: State, r: Reader): void {
  const at = r.pos;
  const n = r.count('function body');
  const declared = st.functionSection?.count ?? 0;
  if (n !== declared) {
    throw malformed(
      'code-count',
      r.where(at),
      `has ${n} function bodies but the function section declares ${declared} functions`,
    );
  }
  for (let i = 0; i < n; i++) {
    const size = r.u32('function body size');
    r.bytesOf(size, `body of function ${st.funcTypes.length - declared + i}`);
  }
  st.codeSeen = true;
}

function kindOf(exports: readonly ExportInfo[]): ModuleKind {
  const fn = (name: string): boolean => exports.some((e) => e.name === name && e.kind === 'function');
  if (fn('_start')) return 'command';
  if (fn('_initialize')) return 'reactor';
  return 'library';
}
