/**
 * Preopen confinement, end to end: the real `fsprobe` module (wasi-libc) under the V8 engine, against a temp
 * directory tree with symlinks that lead out of the preopen. Every refusal also checks that nothing outside was
 * read or written.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createEngine, type CompiledModule, type Preopen } from '../runner-proto/src/engine/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { exampleBytes, requestOf, runCollect, type Collected } from './helpers/engine-wasm.js';

const engine = createEngine('v8', { logger: createLogger('wasi-fs-test', { level: 'silent' }) });
test.after.always(() => engine.close());

let fsprobe: Promise<CompiledModule> | undefined;
function probe(): Promise<CompiledModule> {
  fsprobe ??= engine.compile('sha256:fsprobe', exampleBytes('fsprobe'));
  return fsprobe;
}

interface Tree {
  readonly top: string;
  readonly box: string;
  readonly outside: string;
}

/**
 * top/
 *   x                  "x outside\n"          (what `../x` from the box would reach)
 *   outside/secret.txt "secret\n"
 *   box/               the preopen
 *     in.txt           "inside\n"
 *     sub/nested.txt   "nested\n"
 *     okl      -> in.txt                   (relative, stays inside)
 *     link     -> top/outside/secret.txt   (absolute, leads out)
 *     rlink    -> ../outside/secret.txt    (relative, leads out)
 *     ldir     -> top/outside              (directory, leads out)
 *     dangling -> top/outside/new.txt      (does not exist yet; creating through it would write outside)
 */
function makeTree(t: ExecutionContext): Tree {
  const top = mkdtempSync(join(tmpdir(), 'wasi-fs-'));
  t.teardown(() => rmSync(top, { recursive: true, force: true }));
  const box = join(top, 'box');
  const outside = join(top, 'outside');
  mkdirSync(join(box, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(top, 'x'), 'x outside\n');
  writeFileSync(join(outside, 'secret.txt'), 'secret\n');
  writeFileSync(join(box, 'in.txt'), 'inside\n');
  writeFileSync(join(box, 'sub', 'nested.txt'), 'nested\n');
  symlinkSync('in.txt', join(box, 'okl'));
  symlinkSync(join(outside, 'secret.txt'), join(box, 'link'));
  symlinkSync('../outside/secret.txt', join(box, 'rlink'));
  symlinkSync(outside, join(box, 'ldir'));
  symlinkSync(join(outside, 'new.txt'), join(box, 'dangling'));
  return { top, box, outside };
}

async function fsprobeRun(tree: Tree, args: string[], options: { readonly?: boolean; guest?: string } = {}): Promise<Collected> {
  const preopens: Preopen[] = [{ guest: options.guest ?? '/box', host: tree.box, readonly: options.readonly ?? false }];
  return runCollect(engine, await probe(), requestOf('fsprobe.wasm', { args, preopens, limits: { timeMs: 20_000 } }));
}

const REFUSED = 'error: Capabilities insufficient\n';

async function assertRefused(t: ExecutionContext, tree: Tree, args: string[], stderr = REFUSED): Promise<void> {
  const run = await fsprobeRun(tree, args);
  t.is(run.result.reason, 'exit', args.join(' '));
  t.is(run.result.exitCode, 2, args.join(' '));
  t.is(run.stdout, '', args.join(' '));
  t.is(run.stderr, stderr, args.join(' '));
}

test('reads inside the preopen work, including an inside symlink and an inside `..`', async (t) => {
  const tree = makeTree(t);
  for (const [path, content] of [
    ['/box/in.txt', 'inside\n'],
    ['/box/sub/nested.txt', 'nested\n'],
    ['/box/okl', 'inside\n'],
    ['/box/sub/../in.txt', 'inside\n'],
    ['/box/./sub/./nested.txt', 'nested\n'],
  ] as const) {
    const run = await fsprobeRun(tree, ['read', path]);
    t.deepEqual([run.result.reason, run.result.exitCode, run.stdout, run.stderr], ['exit', 0, content, ''], path);
  }
});

test('writes inside the preopen land in the host directory', async (t) => {
  const tree = makeTree(t);
  const write = await fsprobeRun(tree, ['write', '/box/sub/new.txt', 'hello file']);
  t.deepEqual([write.result.exitCode, write.stdout, write.stderr], [0, '', '']);
  t.is(readFileSync(join(tree.box, 'sub', 'new.txt'), 'utf8'), 'hello file');
  const read = await fsprobeRun(tree, ['read', '/box/sub/new.txt']);
  t.is(read.stdout, 'hello file');
  // Overwrite truncates.
  await fsprobeRun(tree, ['write', '/box/sub/new.txt', 'hi']);
  t.is(readFileSync(join(tree.box, 'sub', 'new.txt'), 'utf8'), 'hi');
});

test('ls lists the preopen, symlinks included, sorted', async (t) => {
  const tree = makeTree(t);
  const run = await fsprobeRun(tree, ['ls', '/box']);
  t.is(run.result.exitCode, 0);
  t.is(run.stdout, 'dangling\nin.txt\nldir\nlink\nokl\nrlink\nsub\n');
  const sub = await fsprobeRun(tree, ['ls', '/box/sub']);
  t.is(sub.stdout, 'nested.txt\n');
});

test('`..` out of the preopen is refused', async (t) => {
  const tree = makeTree(t);
  await assertRefused(t, tree, ['read', '/box/../x']);
  await assertRefused(t, tree, ['read', '/box/sub/../../x']);
  await assertRefused(t, tree, ['read', '/box/sub/../../outside/secret.txt']);
  await assertRefused(t, tree, ['ls', '/box/..']);
});

test('absolute paths outside every preopen are refused', async (t) => {
  const tree = makeTree(t);
  await assertRefused(t, tree, ['read', '/etc/passwd']);
  await assertRefused(t, tree, ['read', join(tree.outside, 'secret.txt')]);
});

test('a preopen mounted at / still maps absolute paths inside the host directory', async (t) => {
  const tree = makeTree(t);
  const missing = await fsprobeRun(tree, ['read', '/etc/passwd'], { guest: '/' });
  t.deepEqual([missing.result.exitCode, missing.stdout, missing.stderr], [2, '', 'error: No such file or directory\n']);
  const inside = await fsprobeRun(tree, ['read', '/in.txt'], { guest: '/' });
  t.is(inside.stdout, 'inside\n');
});

test('a symlink inside the preopen pointing to a file outside is refused', async (t) => {
  const tree = makeTree(t);
  await assertRefused(t, tree, ['read', '/box/link']);
  await assertRefused(t, tree, ['read', '/box/rlink']);
  await assertRefused(t, tree, ['write', '/box/link', 'overwritten']);
  t.is(readFileSync(join(tree.outside, 'secret.txt'), 'utf8'), 'secret\n');
});

test('a symlinked directory pointing outside is refused for read, write and list', async (t) => {
  const tree = makeTree(t);
  await assertRefused(t, tree, ['read', '/box/ldir/secret.txt']);
  await assertRefused(t, tree, ['ls', '/box/ldir']);
  await assertRefused(t, tree, ['write', '/box/ldir/planted.txt', 'bad']);
  t.false(existsSync(join(tree.outside, 'planted.txt')));
});

test('creating through a dangling symlink that points outside is refused and creates nothing', async (t) => {
  const tree = makeTree(t);
  await assertRefused(t, tree, ['write', '/box/dangling', 'bad']);
  t.false(existsSync(join(tree.outside, 'new.txt')));
  await assertRefused(t, tree, ['write', '/box/../planted.txt', 'bad']);
  t.false(existsSync(join(tree.top, 'planted.txt')));
});

test('a read-only preopen refuses writes but allows reads', async (t) => {
  const tree = makeTree(t);
  const create = await fsprobeRun(tree, ['write', '/box/new.txt', 'x'], { readonly: true });
  t.deepEqual([create.result.exitCode, create.stderr], [2, 'error: Read-only file system\n']);
  t.false(existsSync(join(tree.box, 'new.txt')));
  const overwrite = await fsprobeRun(tree, ['write', '/box/in.txt', 'x'], { readonly: true });
  t.deepEqual([overwrite.result.exitCode, overwrite.stderr], [2, 'error: Read-only file system\n']);
  t.is(readFileSync(join(tree.box, 'in.txt'), 'utf8'), 'inside\n');
  const read = await fsprobeRun(tree, ['read', '/box/in.txt'], { readonly: true });
  t.deepEqual([read.result.exitCode, read.stdout], [0, 'inside\n']);
});

test('a missing preopen directory fails the run with load, exit 1', async (t) => {
  const tree = makeTree(t);
  const run = await runCollect(
    engine,
    await probe(),
    requestOf('fsprobe.wasm', { args: ['ls', '/box'], preopens: [{ guest: '/box', host: join(tree.top, 'nope'), readonly: false }] }),
  );
  t.deepEqual([run.result.reason, run.result.exitCode], ['load', 1]);
});
