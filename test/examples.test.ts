// The committed example modules (examples/<name>/<name>.wasm, built by build/examples.sh): they exist, V8
// validates them, they have the expected exports and only WASI preview1 imports, and the ones with exact
// expected output produce it under Node's built-in WASI.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';

// Compiled to dist/test/examples.test.js; the examples live at <root>/examples.
const EXAMPLES = path.resolve(fileURLToPath(import.meta.url), '../../../examples');

// The project compiles without the DOM lib (where TypeScript declares WebAssembly); this is the slice used here.
interface ModuleDescriptor {
  readonly name: string;
  readonly kind: string;
}
interface ImportDescriptor extends ModuleDescriptor {
  readonly module: string;
}
interface WasmModule {
  readonly __brand?: 'WebAssembly.Module';
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: object): Promise<WasmInstance>;
  readonly Module: {
    exports(module: WasmModule): ModuleDescriptor[];
    imports(module: WasmModule): ImportDescriptor[];
  };
  readonly RuntimeError: abstract new (...args: never[]) => Error;
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const COMMANDS = ['hello', 'nbody', 'trap', 'spin', 'grow', 'overflow', 'flood', 'echo', 'fsprobe'] as const;
const CALC_FUNCS = ['add', 'mul64', 'fdiv', 'scale', 'fib', 'counter'] as const;

interface Built {
  readonly file: string;
  readonly reactor: boolean;
}
const MODULES: Built[] = [
  ...COMMANDS.map((n) => ({ file: `${n}/${n}.wasm`, reactor: false })),
  { file: 'hello/hello-v2.wasm', reactor: false },
  { file: 'calc/calc.wasm', reactor: true },
];

const compiled = new Map<string, Promise<WasmModule>>();
function load(file: string): Promise<WasmModule> {
  let m = compiled.get(file);
  if (m === undefined) {
    m = Wasm.compile(fs.readFileSync(path.join(EXAMPLES, file)));
    compiled.set(file, m);
  }
  return m;
}

interface RunResult {
  readonly code: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly error: unknown;
}

interface RunOptions {
  readonly env?: Record<string, string>;
  readonly stdin?: string | Buffer;
  readonly preopens?: Record<string, string>;
}

/** Runs a command module under node:wasi with stdio on temp files; a trap is returned as `error`. */
async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'examples-test-'));
  const inPath = path.join(dir, 'stdin');
  const outPath = path.join(dir, 'stdout');
  const errPath = path.join(dir, 'stderr');
  fs.writeFileSync(inPath, opts.stdin ?? '');
  const stdin = fs.openSync(inPath, 'r');
  const stdout = fs.openSync(outPath, 'w');
  const stderr = fs.openSync(errPath, 'w');
  try {
    const wasi = new WASI({
      version: 'preview1',
      args: [path.basename(file, '.wasm'), ...args],
      env: opts.env ?? {},
      preopens: opts.preopens ?? {},
      returnOnExit: true,
      stdin,
      stdout,
      stderr,
    });
    const instance = await Wasm.instantiate(await load(file), wasi.getImportObject());
    let code: number | undefined;
    let error: unknown;
    try {
      code = wasi.start(instance);
    } catch (err) {
      error = err;
    }
    return { code, error, stdout: fs.readFileSync(outPath, 'utf8'), stderr: fs.readFileSync(errPath, 'utf8') };
  } finally {
    fs.closeSync(stdin);
    fs.closeSync(stdout);
    fs.closeSync(stderr);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const { file, reactor } of MODULES) {
  test(`${file}: committed, valid, expected exports, WASI preview1 imports only`, async (t) => {
    const full = path.join(EXAMPLES, file);
    t.true(fs.existsSync(full), `${full} is missing: run build/examples.sh`);
    const bytes = fs.readFileSync(full);
    t.true(Wasm.validate(bytes), 'WebAssembly.validate');
    const mod = await load(file);
    const exports = new Map(Wasm.Module.exports(mod).map((e) => [e.name, e.kind]));
    t.is(exports.get('memory'), 'memory');
    if (reactor) {
      t.is(exports.get('_initialize'), 'function');
      t.false(exports.has('_start'), 'a reactor has no _start');
      for (const f of CALC_FUNCS) t.is(exports.get(f), 'function', `export ${f}`);
    } else {
      t.is(exports.get('_start'), 'function');
      t.false(exports.has('_initialize'), 'a command has no _initialize');
    }
    for (const imp of Wasm.Module.imports(mod)) {
      t.is(imp.module, 'wasi_snapshot_preview1', `import ${imp.module}.${imp.name}`);
    }
  });
}

test('hello: greeting, args, GREETING, --exit 3', async (t) => {
  const r = await run('hello/hello.wasm', ['one', 'two words', '--exit', '3', 'three'], { env: { GREETING: 'hi there' } });
  t.is(r.error, undefined);
  t.is(r.stdout, 'hello from wasm\none\ntwo words\nthree\nGREETING=hi there\n');
  t.is(r.stderr, '');
  t.is(r.code, 3);
});

test('hello: no args, no env, exit 0', async (t) => {
  const r = await run('hello/hello.wasm', []);
  t.is(r.stdout, 'hello from wasm\n');
  t.is(r.code, 0);
});

test('hello-v2: the new version greets differently', async (t) => {
  const r = await run('hello/hello-v2.wasm', ['x']);
  t.is(r.stdout, 'hello from wasm v2\nx\n');
  t.is(r.code, 0);
});

test('nbody 1000: exact energies', async (t) => {
  const r = await run('nbody/nbody.wasm', ['1000']);
  t.is(r.stdout, '-0.169075164\n-0.169087605\n');
  t.is(r.code, 0);
});

test('nbody: defaults to N=1000', async (t) => {
  const r = await run('nbody/nbody.wasm', []);
  t.is(r.stdout, '-0.169075164\n-0.169087605\n');
});

test('echo: stdin uppercased to stdout', async (t) => {
  const input = 'Hello, wörld!\nsecond line 123\n' + 'abc'.repeat(50_000);
  const r = await run('echo/echo.wasm', [], { stdin: input });
  t.is(r.stdout, input.replace(/[a-z]/g, (c) => c.toUpperCase()));
  t.is(r.code, 0);
});

test('trap: prints, then traps with unreachable', async (t) => {
  const r = await run('trap/trap.wasm', []);
  t.is(r.stdout, 'about to trap\n');
  t.true(r.error instanceof Wasm.RuntimeError, String(r.error));
  t.regex(String((r.error as Error).message), /unreachable/);
});

test('overflow: traps with a stack overflow', async (t) => {
  const r = await run('overflow/overflow.wasm', []);
  t.is(r.stdout, 'recursing\n');
  t.true(r.error instanceof RangeError, String(r.error));
  t.regex(String((r.error as Error).message), /call stack/i);
});

test('grow: reports the page count when growth fails', async (t) => {
  const r = await run('grow/grow.wasm', []);
  t.regex(r.stdout, /^grow failed after \d+ pages\n$/);
  t.is(r.code, 0);
});

test('fsprobe: read, write, ls inside a preopen; errors exit 2', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fsprobe-'));
  try {
    fs.writeFileSync(path.join(dir, 'b.txt'), 'bee\n');
    fs.mkdirSync(path.join(dir, 'a-dir'));
    const preopens = { '/sandbox': dir };
    const read = await run('fsprobe/fsprobe.wasm', ['read', '/sandbox/b.txt'], { preopens });
    t.is(read.stdout, 'bee\n');
    t.is(read.code, 0);
    const write = await run('fsprobe/fsprobe.wasm', ['write', '/sandbox/c.txt', 'sea'], { preopens });
    t.is(write.code, 0);
    t.is(fs.readFileSync(path.join(dir, 'c.txt'), 'utf8'), 'sea');
    const ls = await run('fsprobe/fsprobe.wasm', ['ls', '/sandbox'], { preopens });
    t.is(ls.stdout, 'a-dir\nb.txt\nc.txt\n');
    t.is(ls.code, 0);
    const missing = await run('fsprobe/fsprobe.wasm', ['read', '/sandbox/nope'], { preopens });
    t.is(missing.code, 2);
    t.is(missing.stdout, '');
    t.regex(missing.stderr, /^error: .+\n$/);
    const outside = await run('fsprobe/fsprobe.wasm', ['read', '/etc/hostname'], { preopens });
    t.is(outside.code, 2);
    t.regex(outside.stderr, /^error: /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('calc: reactor functions and warm state', async (t) => {
  const wasi = new WASI({ version: 'preview1', args: [], env: {}, returnOnExit: true });
  const instance = await Wasm.instantiate(await load('calc/calc.wasm'), wasi.getImportObject());
  wasi.initialize(instance);
  const fn = instance.exports as unknown as {
    add(a: number, b: number): number;
    mul64(a: bigint, b: bigint): bigint;
    fdiv(a: number, b: number): number;
    scale(a: number, b: number): number;
    fib(n: number): number;
    counter(): number;
  };
  t.is(fn.add(2, 3), 5);
  t.is(fn.add(2147483647, 1), -2147483648, 'i32 wraps');
  t.is(fn.mul64(123456789n, 1000000007n), 123456789864197523n);
  t.is(fn.mul64(-4n, 5n), -20n);
  t.is(fn.fdiv(1, 4), 0.25);
  t.is(fn.fdiv(1, 0), Infinity);
  t.is(fn.scale(1.5, 2), 3);
  t.is(fn.scale(0.1, 1), Math.fround(0.1), 'f32 precision');
  t.is(fn.fib(0), 0);
  t.is(fn.fib(10), 55);
  t.is(fn.fib(46), 1836311903);
  t.is(fn.counter(), 1);
  t.is(fn.counter(), 2);
  t.is(fn.counter(), 3);
});
