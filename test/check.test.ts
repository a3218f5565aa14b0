import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import { AgentError } from '../runner-proto/src/errors/index.js';
import type { ErrorCode } from '../runner-proto/src/errors/index.js';
import {
  checkModule,
  checkPolicySchema,
  defaultCheckPolicy,
  describeModule,
  formatOffset,
  inspectModule,
} from '../agent/src/check/index.js';
import type { CheckPolicy } from '../agent/src/check/index.js';
import {
  HEADER,
  OP,
  SECTION,
  T,
  assemble,
  codeSection,
  customSection,
  dataCountSection,
  exportSection,
  functionSection,
  importEntry,
  importSection,
  memorySection,
  section,
  sectionOffsets,
  startSection,
  str,
  typeSection,
  uleb,
} from './fixtures/check/wasm-builder.js';

const WASI = 'wasi_snapshot_preview1';
const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;

// ---- fixture modules ----------------------------------------------------------------------------------

/** A WASI command: imports fd_write and proc_exit, defines memory 1..2 pages, `_start` calls proc_exit(0). */
const cmd = {
  types: typeSection([{ params: [T.i32, T.i32, T.i32, T.i32], results: [T.i32] }, { params: [T.i32] }, {}]),
  imports: importSection([
    { module: WASI, name: 'fd_write', func: 0 },
    { module: WASI, name: 'proc_exit', func: 1 },
  ]),
  funcs: functionSection([2]),
  memory: memorySection([{ min: 1, max: 2 }]),
  exports: exportSection([
    { name: '_start', kind: 'func', index: 2 },
    { name: 'memory', kind: 'memory', index: 0 },
  ]),
  code: codeSection([{ code: [OP.i32Const, 0, OP.call, 1] }]),
  custom: customSection('build-id', [1, 2, 3]),
};
const command = assemble(cmd.types, cmd.imports, cmd.funcs, cmd.memory, cmd.exports, cmd.code, cmd.custom);

/** A reactor: `_initialize` and `add(i32, i32) -> i32`, no imports. */
const rx = {
  types: typeSection([{}, { params: [T.i32, T.i32], results: [T.i32] }]),
  funcs: functionSection([0, 1]),
  memory: memorySection([{ min: 1 }]),
  exports: exportSection([
    { name: '_initialize', kind: 'func', index: 0 },
    { name: 'add', kind: 'func', index: 1 },
    { name: 'memory', kind: 'memory', index: 0 },
  ]),
  code: codeSection([{ code: [] }, { code: [OP.localGet, 0, OP.localGet, 1, OP.i32Add] }]),
};
const reactor = assemble(rx.types, rx.funcs, rx.memory, rx.exports, rx.code);

/** Exports only `add`: neither command nor reactor. */
const library = assemble(
  rx.types,
  functionSection([1]),
  exportSection([{ name: 'add', kind: 'func', index: 0 }]),
  codeSection([{ code: [OP.localGet, 0, OP.localGet, 1, OP.i32Add] }]),
);

// ---- helpers ------------------------------------------------------------------------------------------

interface Expected {
  readonly code: ErrorCode;
  readonly rule: string;
  readonly section?: string;
  readonly offset?: number;
}

/** What every rejection must satisfy, whatever produced it. Returns the list of violations. */
function errorProblems(err: unknown): string[] {
  if (!(err instanceof AgentError)) return [`not an AgentError: ${String(err)}`];
  const problems: string[] = [];
  const { rule, section: sec, offset } = err.details;
  if (typeof rule !== 'string' || !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(rule)) problems.push(`rule ${String(rule)} is not kebab-case`);
  if (/[\r\n]/.test(err.message)) problems.push('message spans several lines');
  if (sec !== undefined && !err.message.includes(sec)) problems.push(`message lacks section ${sec}`);
  if (offset !== undefined && !err.message.includes(formatOffset(offset))) problems.push(`message lacks offset ${formatOffset(offset)}`);
  if (sec === undefined && offset === undefined && !err.message.startsWith('module: ')) problems.push('message has no location');
  return problems;
}

function rejects(t: ExecutionContext, fn: () => unknown, expected: Expected): AgentError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (!(thrown instanceof AgentError)) {
    t.fail(`expected an AgentError ${expected.code}/${expected.rule}, got ${thrown === undefined ? 'no error' : String(thrown)}`);
    throw new Error('unreachable');
  }
  t.is(thrown.code, expected.code, thrown.message);
  t.is(thrown.details.rule, expected.rule, thrown.message);
  if (expected.section !== undefined) t.is(thrown.details.section, expected.section, thrown.message);
  if (expected.offset !== undefined) t.is(thrown.details.offset, expected.offset, thrown.message);
  t.deepEqual(errorProblems(thrown), [], thrown.message);
  return thrown;
}

const permissive: CheckPolicy = { ...defaultCheckPolicy, allowedImportModules: [WASI, 'env'], requireEntryPoint: false };

function concat(...parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

// ---- accepted modules ---------------------------------------------------------------------------------

test('a WASI command is accepted with its imports, exports, memory and kind', (t) => {
  t.true(wasm.validate(command), 'fixture must be valid for V8 too');
  const info = checkModule(command, defaultCheckPolicy);
  t.is(info.kind, 'command');
  t.is(info.size, command.length);
  t.is(info.version, 1);
  t.is(info.functionCount, 3);
  t.is(info.start, null);
  t.deepEqual(
    info.imports.map((i) => [i.module, i.name, i.kind, i.typeIndex]),
    [
      [WASI, 'fd_write', 'function', 0],
      [WASI, 'proc_exit', 'function', 1],
    ],
  );
  t.deepEqual(info.imports[0]!.signature, { params: ['i32', 'i32', 'i32', 'i32'], results: ['i32'] });
  t.deepEqual(info.exports[0], { name: '_start', kind: 'function', index: 2, offset: info.exports[0]!.offset, signature: { params: [], results: [] } });
  t.deepEqual(info.exports[1], { name: 'memory', kind: 'memory', index: 0, offset: info.exports[1]!.offset });
  t.is(info.memories.length, 1);
  t.like(info.memories[0], { index: 0, min: 1, max: 2, shared: false, memory64: false, imported: false });
  t.deepEqual(info.customSections, ['build-id']);
  t.deepEqual(
    info.sections.map((s) => s.name),
    ['type', 'import', 'function', 'memory', 'export', 'code', 'custom'],
  );
  const offsets = sectionOffsets(cmd.types, cmd.imports, cmd.funcs, cmd.memory, cmd.exports, cmd.code, cmd.custom);
  t.deepEqual(info.sections.map((s) => s.offset), offsets);
  t.deepEqual(info.sections.map((s) => s.contentOffset - s.offset), [2, 2, 2, 2, 2, 2, 2]);
  t.is(info.sections.at(-1)!.customName, 'build-id');
  const last = info.sections.at(-1)!;
  t.is(last.contentOffset + last.size, command.length);
});

test('a reactor is accepted and its function exports carry signatures', (t) => {
  const info = checkModule(reactor, defaultCheckPolicy);
  t.is(info.kind, 'reactor');
  t.deepEqual(info.imports, []);
  t.deepEqual(info.exports.find((e) => e.name === 'add')?.signature, { params: ['i32', 'i32'], results: ['i32'] });
  t.like(info.memories[0], { min: 1, max: null });
});

test('inspectModule classifies a module without _start or _initialize as a library', (t) => {
  t.is(inspectModule(library).kind, 'library');
  t.is(checkModule(library, { ...defaultCheckPolicy, requireEntryPoint: false }).kind, 'library');
});

test('a declared reactor without _initialize is accepted only when the policy allows it', (t) => {
  const allow = { ...defaultCheckPolicy, allowReactor: true };
  t.is(checkModule(library, allow, { declaredKind: 'reactor' }).kind, 'library');
  const err = rejects(t, () => checkModule(library, defaultCheckPolicy, { declaredKind: 'reactor' }), {
    code: 'AGT_ERR_POLICY',
    rule: 'entry-point',
    section: 'export',
  });
  t.regex(err.message, /allowReactor/);
  // allowReactor still needs something to call
  const noFunctions = assemble(memorySection([{ min: 1 }]), exportSection([{ name: 'memory', kind: 'memory', index: 0 }]));
  rejects(t, () => checkModule(noFunctions, allow, { declaredKind: 'reactor' }), { code: 'AGT_ERR_POLICY', rule: 'entry-point' });
});

test('a module declared as a command must export _start', (t) => {
  t.is(checkModule(command, defaultCheckPolicy, { declaredKind: 'command' }).kind, 'command');
  rejects(t, () => checkModule(reactor, defaultCheckPolicy, { declaredKind: 'command' }), {
    code: 'AGT_ERR_POLICY',
    rule: 'entry-point',
    section: 'export',
  });
});

test('signatures cover every value type, and GC reference types are spelled like the text format', (t) => {
  const sig = { params: [T.i64, T.f32, T.f64, T.v128], results: [T.funcref, T.externref] };
  const m = assemble(
    typeSection([sig]),
    functionSection([0]),
    exportSection([{ name: 'f', kind: 'func', index: 0 }]),
    codeSection([{ code: [OP.unreachable] }]),
  );
  t.true(wasm.validate(m));
  t.deepEqual(checkModule(m, permissive).exports[0]!.signature, {
    params: ['i64', 'f32', 'f64', 'v128'],
    results: ['funcref', 'externref'],
  });

  // rec group { struct { mut i32 }, func (ref null 0) -> (ref func) }: only the parser is checked here, as
  // Node 20's V8 does not ship GC.
  const rec = [0x4e, 2, 0x5f, 1, T.i32, 1, 0x60, 1, 0x63, 0, 1, 0x64, 0x70];
  const gc = assemble(
    section(SECTION.type, [1, ...rec]),
    functionSection([1]),
    exportSection([{ name: 'g', kind: 'func', index: 0 }]),
    codeSection([{ code: [OP.unreachable] }]),
  );
  t.deepEqual(inspectModule(gc).exports[0]!.signature, { params: ['(ref null 0)'], results: ['(ref func)'] });
  rejects(t, () => inspectModule(assemble(section(SECTION.type, [1, 0x4e, 1, 0x5f, 0]), functionSection([0]))), {
    code: 'AGT_ERR_WASM_INVALID',
    rule: 'type-index',
    section: 'function',
  });
});

test('imported memories are listed with their limits, shared and memory64 flags', (t) => {
  const m = assemble(
    importSection([{ module: 'env', name: 'memory', memory: { min: 2, max: 10, shared: true } }]),
    // memory64 (flags 0x04) with a u64 minimum; V8 in Node 20 rejects it, the parser must not
    section(SECTION.memory, [1, 0x05, ...uleb(3), ...uleb(2 ** 40)]),
  );
  const info = inspectModule(m);
  t.like(info.memories[0], { index: 0, min: 2, max: 10, shared: true, memory64: false, imported: true, importedFrom: { module: 'env', name: 'memory' } });
  t.like(info.memories[1], { index: 1, min: 3, max: 2 ** 40, shared: false, memory64: true, imported: false });
  t.like(info.imports[0], { kind: 'memory', limits: { min: 2, max: 10, shared: true, is64: false } });
});

test('the data-count section goes between element and code, and a start section is decoded', (t) => {
  const ok = assemble(cmd.types, cmd.imports, cmd.funcs, startSection(2), dataCountSection(0), cmd.code);
  t.true(wasm.validate(ok));
  const info = checkModule(ok, permissive);
  t.is(info.start, 2);
  t.deepEqual(info.sections.map((s) => s.id), [1, 2, 3, 8, 12, 10]);
  rejects(t, () => inspectModule(assemble(cmd.types, cmd.imports, cmd.funcs, cmd.code, dataCountSection(0))), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'section-order',
    section: 'datacount',
  });
  rejects(t, () => inspectModule(assemble(cmd.types, cmd.imports, cmd.funcs, startSection(7), cmd.code)), {
    code: 'AGT_ERR_WASM_INVALID',
    rule: 'start-function',
    section: 'start',
  });
});

test('describeModule gives a JSON-able summary', (t) => {
  const summary = describeModule(inspectModule(command));
  t.deepEqual(summary, {
    kind: 'command',
    size: command.length,
    imports: 2,
    exports: ['_start', 'memory'],
    memory: { min: 1, max: 2, shared: false, memory64: false, imported: false },
  });
  t.deepEqual(JSON.parse(JSON.stringify(summary)), summary);
  t.is(describeModule(inspectModule(assemble())).memory, null);
});

test('an empty module (header only) parses', (t) => {
  const info = inspectModule(Uint8Array.from(HEADER));
  t.deepEqual(info.sections, []);
  t.is(info.kind, 'library');
});

test('a section size in a padded (non-minimal) LEB128 is accepted', (t) => {
  const padded = concat(command, [0x00, 0x83, 0x80, 0x80, 0x80, 0x00, ...str('x').slice(0, 2), 0xaa]);
  // size 3 in 5 bytes: name "x" (2 bytes) + 1 payload byte
  t.true(wasm.validate(padded));
  t.deepEqual(inspectModule(padded).customSections, ['build-id', 'x']);
});

// ---- malformed binaries -------------------------------------------------------------------------------

test('a truncated module is malformed at every cut point that is not a section boundary', (t) => {
  const boundaries = new Set(inspectModule(command).sections.map((s) => s.offset));
  boundaries.add(command.length);
  let checked = 0;
  for (let cut = 0; cut < command.length; cut++) {
    const part = command.subarray(0, cut);
    if (boundaries.has(cut)) {
      // a prefix that ends on a section boundary is a smaller module, which must still never crash
      t.deepEqual(
        (() => {
          try {
            checkModule(part, defaultCheckPolicy);
            return [];
          } catch (err) {
            return errorProblems(err);
          }
        })(),
        [],
      );
      continue;
    }
    const err = rejects(t, () => checkModule(part, defaultCheckPolicy), { code: 'AGT_ERR_WASM_MALFORMED', rule: expectRule(cut) });
    t.true(err.details.offset !== undefined, `cut ${cut}: ${err.message}`);
    checked++;
  }
  t.true(checked > 40);

  function expectRule(cut: number): string {
    if (cut < 4) return 'magic';
    if (cut < 8) return 'version';
    // cut right after a section id byte: the size LEB is missing
    if (boundaries.has(cut - 1)) return 'truncated';
    return 'section-size';
  }
});

test('a prefix that keeps the function section but loses the code section is malformed', (t) => {
  const cut = command.subarray(0, sectionOffsets(cmd.types, cmd.imports, cmd.funcs, cmd.memory)[3]);
  rejects(t, () => inspectModule(cut), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'code-count', section: 'function' });
});

test('a wrong magic number is rejected at offset 0', (t) => {
  const bad = concat([0x7f, 0x45, 0x4c, 0x46], command.subarray(4));
  const err = rejects(t, () => checkModule(bad, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'magic',
    section: 'header',
    offset: 0,
  });
  t.regex(err.message, /7f 45 4c 46/);
  rejects(t, () => inspectModule(new Uint8Array(0)), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'magic', offset: 0 });
});

test('a wrong version is rejected at offset 4, and a component is recognised', (t) => {
  const v2 = concat(command.subarray(0, 4), [2, 0, 0, 0], command.subarray(8));
  const err = rejects(t, () => checkModule(v2, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'version',
    section: 'header',
    offset: 4,
  });
  t.is(err.message, 'header at byte 0x4: expected version 1, found 2');
  const component = concat(command.subarray(0, 4), [0x0d, 0x00, 0x01, 0x00]);
  t.regex(rejects(t, () => inspectModule(component), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'version' }).message, /component/);
});

test('garbage after the last section is trailing-bytes at the garbage offset', (t) => {
  const err = rejects(t, () => checkModule(concat(command, [0xde, 0xad, 0xbe, 0xef]), defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'trailing-bytes',
    offset: command.length,
  });
  t.is(err.details.trailingBytes, 4);
  t.regex(err.message, /4 unexpected bytes after the custom section: byte 0xde is not a section id/);
  const padded = rejects(t, () => checkModule(concat(reactor, new Uint8Array(100)), defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'trailing-bytes',
    offset: reactor.length,
  });
  t.regex(padded.message, /100 unexpected bytes after the code section: all zero/);
});

test('a section out of order is rejected at that section', (t) => {
  const exps = exportSection([{ name: '_start', kind: 'func', index: 0 }]);
  const m = assemble(cmd.types, cmd.funcs, exps, cmd.memory, codeSection([{ code: [] }]));
  const at = sectionOffsets(cmd.types, cmd.funcs, exps, cmd.memory)[3]; // memory after export
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'section-order',
    section: 'memory',
    offset: at,
  });
  t.regex(err.message, /memory section must come before the export section/);
});

test('a duplicate section is rejected and points at the first one', (t) => {
  const m = assemble(cmd.types, cmd.imports, cmd.funcs, cmd.memory, cmd.memory, cmd.exports, cmd.code);
  const offsets = sectionOffsets(cmd.types, cmd.imports, cmd.funcs, cmd.memory, cmd.memory);
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'section-duplicate',
    section: 'memory',
    offset: offsets[4],
  });
  t.true(err.message.includes(formatOffset(offsets[3]!)));
});

test('a section whose size runs past the end of the file is rejected', (t) => {
  const m = concat(command, [SECTION.custom, 100, ...str('x')]);
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_MALFORMED',
    rule: 'section-size',
    section: 'custom',
    offset: command.length,
  });
  t.like(err.details, { declaredSize: 100, available: 2 });
});

test('section content that disagrees with the declared size is rejected', (t) => {
  // memory section declares 4 bytes but its one entry is 3 bytes long
  const loose = section(SECTION.memory, [1, 0x01, 1, 2, 0]);
  rejects(t, () => inspectModule(assemble(loose)), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'section-content', section: 'memory', offset: 8 + 2 + 4 });
  // an entry that runs past the section's end
  const short = section(SECTION.memory, [1, 0x01, 1]);
  rejects(t, () => inspectModule(assemble(short, cmd.custom)), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'section-content', section: 'memory' });
});

test('an over-long or oversized LEB128 is rejected as leb128', (t) => {
  const tooLong = concat(HEADER, [SECTION.custom, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
  rejects(t, () => inspectModule(tooLong), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'leb128', section: 'custom', offset: 9 });
  const tooBig = concat(HEADER, [SECTION.custom, 0xff, 0xff, 0xff, 0xff, 0x1f]);
  rejects(t, () => inspectModule(tooBig), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'leb128', section: 'custom', offset: 9 });
});

test('an unknown value type, import kind or invalid UTF-8 name is malformed where it occurs', (t) => {
  const badType = assemble(section(SECTION.type, [1, 0x60, 1, 0x55, 0]));
  rejects(t, () => inspectModule(badType), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'value-type', section: 'type', offset: 8 + 2 + 3 });
  const badKind = assemble(section(SECTION.import, [1, ...str('a'), ...str('b'), 0x09]));
  rejects(t, () => inspectModule(badKind), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'import-kind', section: 'import', offset: 8 + 2 + 5 });
  const badName = assemble(section(SECTION.export, [1, 2, 0xc3, 0x28, 0, 0]));
  rejects(t, () => inspectModule(badName), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'utf8', section: 'export', offset: 8 + 2 + 1 });
});

test('a code section whose body count differs from the function section is malformed', (t) => {
  const m = assemble(cmd.types, cmd.imports, cmd.funcs, codeSection([{ code: [] }, { code: [] }]));
  rejects(t, () => inspectModule(m), { code: 'AGT_ERR_WASM_MALFORMED', rule: 'code-count', section: 'code' });
});

test('exports that point nowhere or repeat a name are invalid', (t) => {
  const nowhere = assemble(cmd.types, cmd.funcs, exportSection([{ name: '_start', kind: 'func', index: 9 }]), codeSection([{ code: [] }]));
  rejects(t, () => inspectModule(nowhere), { code: 'AGT_ERR_WASM_INVALID', rule: 'export-index', section: 'export' });
  const twice = assemble(
    cmd.types,
    cmd.funcs,
    exportSection([
      { name: 'a', kind: 'func', index: 0 },
      { name: 'a', kind: 'func', index: 0 },
    ]),
    codeSection([{ code: [] }]),
  );
  rejects(t, () => inspectModule(twice), { code: 'AGT_ERR_WASM_INVALID', rule: 'export-duplicate', section: 'export' });
});

// ---- validation ---------------------------------------------------------------------------------------

test('a function body that parses but fails validation is reported by V8 with its offset', (t) => {
  // () -> i32 whose body is just `end`: the stack is empty where an i32 is expected
  const types = typeSection([{ results: [T.i32] }, {}]);
  const funcs = functionSection([0, 1]);
  const exps = exportSection([{ name: '_start', kind: 'func', index: 1 }]);
  const code = codeSection([{ code: [] }, { code: [] }]);
  const m = assemble(types, funcs, exps, code);
  t.notThrows(() => inspectModule(m));
  const codeAt = sectionOffsets(types, funcs, exps)[2]! + exps.length;
  const endOfFirstBody = codeAt + 2 /* id, size */ + 1 /* count */ + 1 /* body size */ + 1; /* locals */
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), {
    code: 'AGT_ERR_WASM_INVALID',
    rule: 'validate',
    section: 'code',
    offset: endOfFirstBody,
  });
  t.is(err.details.function, 0);
  t.regex(err.message, new RegExp(`^code section at byte ${formatOffset(endOfFirstBody)}: fails validation: Compiling function #0 failed`));
});

// ---- policy -------------------------------------------------------------------------------------------

test('an import from env is rejected by the default policy with rule, section and offset', (t) => {
  const imports = [
    { module: WASI, name: 'fd_write', func: 0 },
    { module: 'env', name: 'abort', func: 1 },
    { module: 'env', name: 'trace', func: 1 },
  ] as const;
  const importSec = importSection(imports);
  const m = assemble(cmd.types, importSec, cmd.funcs, cmd.memory, exportSection([{ name: '_start', kind: 'func', index: 3 }]), cmd.code);
  const envAt = 8 + cmd.types.length + 2 /* id, size */ + 1 /* count */ + importEntry(imports[0]).length;
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), {
    code: 'AGT_ERR_POLICY',
    rule: 'import-module',
    section: 'import',
    offset: envAt,
  });
  t.is(
    err.message,
    `import section at byte ${formatOffset(envAt)}: module "env" is not allowed ` +
      `(import "env"."abort", and 1 more disallowed imports; allowed: wasi_snapshot_preview1)`,
  );
  t.deepEqual(err.details.disallowedModules, ['env']);
  t.is(checkModule(m, { ...defaultCheckPolicy, allowedImportModules: [WASI, 'env'] }).imports.length, 3);
});

test('a module over maxModuleBytes is rejected before it is parsed', (t) => {
  const garbage = new Uint8Array(17).fill(0xff);
  const err = rejects(t, () => checkModule(garbage, { ...defaultCheckPolicy, maxModuleBytes: 16 }), {
    code: 'AGT_ERR_TOO_LARGE',
    rule: 'max-size',
  });
  t.like(err.details, { size: 17, limit: 16 });
  t.is(err.status, 413);
  const huge = new Uint8Array(defaultCheckPolicy.maxModuleBytes + 1);
  rejects(t, () => checkModule(huge, defaultCheckPolicy), { code: 'AGT_ERR_TOO_LARGE', rule: 'max-size' });
  t.notThrows(() => checkModule(command, { ...defaultCheckPolicy, maxModuleBytes: command.length }));
});

test('a module without an entry point is rejected', (t) => {
  const err = rejects(t, () => checkModule(library, defaultCheckPolicy), {
    code: 'AGT_ERR_POLICY',
    rule: 'entry-point',
    section: 'export',
    offset: inspectModule(library).sections.find((s) => s.name === 'export')!.offset,
  });
  t.regex(err.message, /neither a function "_start" \(command\) nor "_initialize" \(reactor\); exported functions: add$/);
  const bare = assemble(cmd.types);
  t.regex(rejects(t, () => checkModule(bare, defaultCheckPolicy), { code: 'AGT_ERR_POLICY', rule: 'entry-point' }).message, /^module: /);
});

test('initial memory over the page limit is rejected, for defined and imported memories', (t) => {
  const big = memorySection([{ min: 20000 }]);
  const m = assemble(cmd.types, cmd.imports, cmd.funcs, big, cmd.exports, cmd.code);
  const at = sectionOffsets(cmd.types, cmd.imports, cmd.funcs)[2]! + cmd.funcs.length + 3;
  const err = rejects(t, () => checkModule(m, defaultCheckPolicy), { code: 'AGT_ERR_POLICY', rule: 'memory-limit', section: 'memory', offset: at });
  t.regex(err.message, /memory 0 starts with 20000 pages \(1\.22 GiB\), over the limit of 16384 pages \(1 GiB\)/);
  const imported = assemble(
    cmd.types,
    importSection([{ module: WASI, name: 'memory', memory: { min: 17000 } }]),
    cmd.funcs,
    exportSection([{ name: '_start', kind: 'func', index: 0 }]),
    codeSection([{ code: [] }]),
  );
  rejects(t, () => checkModule(imported, defaultCheckPolicy), { code: 'AGT_ERR_POLICY', rule: 'memory-limit', section: 'import', offset: 8 + cmd.types.length + 3 });
  t.notThrows(() => checkModule(imported, { ...defaultCheckPolicy, maxInitialMemoryPages: 17000 }));
});

test('module bytes in shared memory are checked from a private copy', (t) => {
  const shared = new Uint8Array(new SharedArrayBuffer(command.length));
  shared.set(command);
  t.is(checkModule(shared, defaultCheckPolicy).kind, 'command');
});

test('the default policy is frozen and the schema fills it in from an empty config', (t) => {
  t.true(Object.isFrozen(defaultCheckPolicy));
  t.true(Object.isFrozen(defaultCheckPolicy.allowedImportModules));
  t.deepEqual(defaultCheckPolicy, {
    maxModuleBytes: 64 * 1024 * 1024,
    allowedImportModules: [WASI],
    maxInitialMemoryPages: 16384,
    requireEntryPoint: true,
    allowReactor: false,
  });
  const parsed = checkPolicySchema.parse({});
  t.deepEqual(parsed, defaultCheckPolicy);
  parsed.allowedImportModules.push('env'); // a parsed policy must not share the default's array
  t.deepEqual(checkPolicySchema.parse({}).allowedImportModules, [WASI]);
  t.deepEqual(checkPolicySchema.parse({ allowedImportModules: ['env'], allowReactor: true }).allowedImportModules, ['env']);
  t.false(checkPolicySchema.safeParse({ maxModuleBytes: -1 }).success);
  t.false(checkPolicySchema.safeParse({ maxInitialMemoryPages: 1.5 }).success);
  t.false(checkPolicySchema.safeParse({ allowedImports: [] }).success, 'unknown keys are errors');
});

test('formatOffset prints hex', (t) => {
  t.is(formatOffset(0), '0x0');
  t.is(formatOffset(26), '0x1a');
});

// ---- properties ---------------------------------------------------------------------------------------

type Mutation =
  | { readonly op: 'set'; readonly at: number; readonly value: number }
  | { readonly op: 'insert'; readonly at: number; readonly values: Uint8Array }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'truncate'; readonly at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x01, 0x0b) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), values: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(seed: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = [...seed];
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    switch (m.op) {
      case 'set':
        if (at < bytes.length) bytes[at] = m.value;
        break;
      case 'insert':
        bytes.splice(at, 0, ...m.values);
        break;
      case 'delete':
        bytes.splice(at, m.count);
        break;
      case 'truncate':
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return Uint8Array.from(bytes);
}

const simdRefs = assemble(
  typeSection([{ params: [T.i64, T.f32, T.f64, T.v128], results: [T.funcref, T.externref] }, {}]),
  importSection([{ module: 'env', name: 'mem', memory: { min: 1, max: 4, shared: true } }]),
  functionSection([0, 1]),
  exportSection([
    { name: 'f', kind: 'func', index: 0 },
    { name: '_initialize', kind: 'func', index: 1 },
  ]),
  startSection(1),
  dataCountSection(0),
  codeSection([{ locals: [[2, T.i32]], code: [OP.unreachable] }, { code: [] }]),
  customSection('name'),
);
const seeds = [command, reactor, library, simdRefs];

interface Outcome {
  readonly ok: boolean;
  readonly error?: AgentError;
}

function run(fn: () => unknown): Outcome {
  try {
    fn();
    return { ok: true };
  } catch (err) {
    const problems = errorProblems(err);
    if (problems.length > 0) throw new Error(`bad rejection: ${problems.join('; ')} (${String(err)})`);
    return { ok: false, error: err as AgentError };
  }
}

test('mutated and truncated modules are accepted or rejected with an AgentError, never anything else', (t) => {
  t.true(seeds.every((s) => wasm.validate(s)));
  fc.assert(
    fc.property(fc.constantFrom(...seeds), fc.array(mutationArb, { minLength: 1, maxLength: 5 }), (seed, mutations) => {
      const bytes = mutate(seed, mutations);
      const started = performance.now();
      const inspected = run(() => inspectModule(bytes));
      const strict = run(() => checkModule(bytes, defaultCheckPolicy));
      const loose = run(() => checkModule(bytes, permissive));
      if (performance.now() - started > 1000) throw new Error('checking one small module took over a second');

      // Differential oracle against V8: the parser may be stricter than nothing, but never stricter than
      // V8, and whatever checkModule accepts V8 must accept.
      const v8 = wasm.validate(bytes);
      if (!inspected.ok && v8) throw new Error(`inspectModule rejected a module V8 accepts: ${inspected.error?.message}`);
      if (loose.ok && !v8) throw new Error('checkModule accepted a module V8 rejects');
      if (strict.ok && !loose.ok) throw new Error('the default policy accepted what a looser one rejected');
      // checkModule is size, then inspectModule, then V8, then policy: so it fails exactly as inspectModule
      // does, and when inspectModule passes, only V8 (rule validate) or the policy can still say no.
      if (!inspected.ok && loose.error?.message !== inspected.error?.message) {
        throw new Error(`checkModule and inspectModule disagree: ${String(loose.error)} / ${String(inspected.error)}`);
      }
      for (const outcome of inspected.ok ? [strict, loose] : []) {
        const e = outcome.error;
        if (e !== undefined && !(e.code === 'AGT_ERR_POLICY' || (e.code === 'AGT_ERR_WASM_INVALID' && e.details.rule === 'validate'))) {
          throw new Error(`after a clean parse checkModule failed with ${e.code}: ${e.message}`);
        }
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('arbitrary bytes behind a valid header never escape as another exception type', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
      const bytes = concat(HEADER, tail);
      run(() => inspectModule(bytes));
      run(() => checkModule(bytes, permissive));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('section framing survives arbitrary section ids and sizes', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ id: fc.integer({ min: 0, max: 15 }), content: fc.uint8Array({ maxLength: 12 }) }), { maxLength: 6 }),
      (sections) => {
        const bytes = assemble(...sections.map((s) => section(s.id, [...s.content])));
        const inspected = run(() => inspectModule(bytes));
        if (!inspected.ok && wasm.validate(bytes)) throw new Error(`rejected what V8 accepts: ${inspected.error?.message}`);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});
