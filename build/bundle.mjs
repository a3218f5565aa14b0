#!/usr/bin/env node
// Bundles the agent daemon and the wasmedge_emit CLI into single files for the QEMU guest image:
//   build/out/bundle/agent.mjs, cli.mjs   single ESM files (node agent.mjs ARGS works anywhere)
//   build/out/bundle/agent.cjs, cli.cjs   the same as CommonJS, started by launch.cjs with a V8 code cache
//   build/out/bundle/launch.cjs           `node launch.cjs agent|cli ARGS`: compiles NAME.cjs with NAME.cjs.cache
//   build/out/bundle/heartbeat-thread.js  the channel's heartbeat worker, which the bundles start by file name
//   build/out/bundle/node_modules/        native packages only
// Why the code cache: under QEMU's TCG, V8 compiling the agent bundle takes about 1.7 s of the agent's start
// (profiled in the guest); build/guest-image.sh writes the caches with the same node binary the guest runs.
// Native packages stay external and are copied beside the bundles with only what they load at run time:
//   koffi (the glibc binary from @koromix/koffi-linux-x64 behind a small loader, KOFFI_LOADER below),
//   @node-rs/crc32 + its linux-x64-gnu binary.
// The CRC module falls back to pure JS when @node-rs/crc32 is absent, koffi is required for the ring transport.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'build/out/bundle');
const NM = path.join(ROOT, 'node_modules');
const EXTERNAL = ['koffi', '@node-rs/crc32'];

const entries = {
  agent: 'agent/src/daemon/main.ts',
  cli: 'agent/src/cli/main.ts',
};

/** Files copied from node_modules (relative to node_modules), the minimum the packages load at run time. */
const NATIVE_FILES = [
  'koffi/LICENSE.txt',
  '@koromix/koffi-linux-x64/linux_x64/koffi.node',
  '@node-rs/crc32/package.json',
  '@node-rs/crc32/index.js',
  '@node-rs/crc32/LICENSE',
  '@node-rs/crc32-linux-x64-gnu/package.json',
  '@node-rs/crc32-linux-x64-gnu/crc32.linux-x64-gnu.node',
];

/**
 * zod v4 re-exports every locale (about 260 KiB of the 620 KiB agent bundle) through a namespace the bundler
 * cannot shake; only `en` is ever used (it is zod's default). Parsing and running less code matters in a guest
 * under TCG, where node starts 10-30x slower than on the host.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    const en = path.join(NM, 'zod/v4/locales/en.js');
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
      /zod[\\/]v4[\\/](core|classic)[\\/]/.test(a.importer) && fs.existsSync(en) ? { path: 'zod-locales-en', namespace: 'zod-locales' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, () => ({
      contents: `export { default as en } from ${JSON.stringify(en)};`,
      loader: 'js',
      resolveDir: ROOT,
    }));
  },
};

/**
 * Node built-ins that bundled packages require when loaded but use only on paths the guest does not take: ws's
 * https and tls (wss:// URLs) and zlib (permessage-deflate, which the agent does not negotiate), sonic-boom's and
 * thread-stream's assert (failed preconditions). Each becomes a stand-in that loads the real module on first
 * use; under TCG each of these requires costs tens of milliseconds of the agent's start or of the first run.
 * The project's own imports are left alone.
 */
const LAZY_BUILTIN = /^(?:node:)?(https|tls|zlib|assert)$/;
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: LAZY_BUILTIN }, (a) =>
      /[\\/]node_modules[\\/]/.test(a.importer) ? { path: LAZY_BUILTIN.exec(a.path)[1], namespace: 'lazy-builtin' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => ({
      // An arrow function as the target: callable (assert is a function) and without a non-configurable
      // `prototype`, which the ownKeys trap would otherwise have to report.
      contents: `'use strict';
let real;
const load = () => (real ??= require(${JSON.stringify(a.path)}));
module.exports = new Proxy(() => {}, {
  get: (_t, k) => load()[k],
  set: (_t, k, v) => ((load()[k] = v), true),
  has: (_t, k) => k in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_t, k) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), k);
    return d && { ...d, configurable: true };
  },
  apply: (_t, self, args) => Reflect.apply(load(), self, args),
});
`,
      loader: 'js',
    }));
  },
};

/** ws probes for optional native helpers at load (a failed module resolution each); the bundles never ship them. */
const WS_DEFINES = { 'process.env.WS_NO_BUFFER_UTIL': '"1"', 'process.env.WS_NO_UTF_8_VALIDATE': '"1"' };

/**
 * The bundles' `koffi`: the native module itself. koffi's own loader (four CommonJS files: it finds the
 * platform's package, reads node's ELF header to tell glibc from musl, wraps deprecated functions) took 0.1-0.3 s
 * more than loading the binary alone under QEMU's TCG (measured in the guest), on the ring transport's path to
 * its first frame. The bundles ship the linux-x64 glibc binary only (NATIVE_FILES), the build host's platform.
 * The version check is the one koffi's loader makes.
 */
const KOFFI_LOADER = `'use strict';
// Written by build/bundle.mjs: loads koffi's linux-x64 glibc binary directly (see KOFFI_LOADER there).
const native = require('../@koromix/koffi-linux-x64/linux_x64/koffi.node');
if (native.version !== '@VERSION@') throw new Error('Mismatched native Koffi module: ' + native.version + ', expected @VERSION@');
module.exports = native;
`;

/** Starts NAME.cjs with NAME.cjs.cache as V8 code cache (BRIDGE_CODE_CACHE=write: write the cache at exit). */
const LAUNCHER = `'use strict';
// usage: node launch.cjs agent|cli ARGS... (written by build/bundle.mjs)
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { Module, createRequire } = require('node:module');
const name = process.argv[2];
if (name !== 'agent' && name !== 'cli') {
  process.stderr.write('usage: node launch.cjs agent|cli ARGS...\\n');
  process.exit(2);
}
process.argv.splice(2, 1);
const file = path.join(__dirname, name + '.cjs');
const cacheFile = file + '.cache';
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {}
// The bundles are ASCII without a shebang (bundle.mjs checks): latin1 is a plain byte copy into a one-byte string.
const source = fs.readFileSync(file, 'latin1');
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
const mode = process.env.BRIDGE_CODE_CACHE;
if (mode === 'write') process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
else if (mode === 'debug') process.stderr.write('code cache ' + (cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent') + '\\n');
const mod = new Module(file, module);
mod.filename = file;
script.runInThisContext()(mod.exports, createRequire(file), mod, file, __dirname);
`;

async function main() {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  const t0 = Date.now();
  const common = { bundle: true, platform: 'node', target: 'node20', minify: true, legalComments: 'none', external: EXTERNAL, logLevel: 'warning' };
  // The sources are ESM and resolve native packages from import.meta.url: give CommonJS the same answer.
  const cjs = {
    ...common,
    format: 'cjs',
    define: { 'import.meta.url': '__bridgeImportMetaUrl' },
    banner: { js: "var __bridgeImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  };
  for (const [name, entry] of Object.entries(entries)) {
    await build({
      ...cjs,
      entryPoints: [path.join(ROOT, entry)],
      outfile: path.join(OUT, `${name}.cjs`),
      define: { ...cjs.define, ...WS_DEFINES },
      plugins: [zodEnglishOnly, lazyBuiltins],
    });
    await build({
      ...common,
      entryPoints: [path.join(ROOT, entry)],
      outfile: path.join(OUT, `${name}.mjs`),
      format: 'esm',
      // Bundled CommonJS dependencies (pino, ws, ...) call require() for node builtins: give ESM one.
      banner: { js: "import { createRequire as __bridgeCreateRequire } from 'node:module'; const require = __bridgeCreateRequire(import.meta.url);" },
      define: WS_DEFINES,
      plugins: [zodEnglishOnly, lazyBuiltins],
    });
  }
  // The channel's heartbeat thread (runner-proto/src/channel/heartbeat-thread.ts) is started by file name, beside
  // the module that starts it: here, beside the bundles. CommonJS, like the package.json written below says.
  await build({ ...cjs, entryPoints: [path.join(ROOT, 'runner-proto/src/channel/heartbeat-thread.ts')], outfile: path.join(OUT, 'heartbeat-thread.js') });
  // Without it a .js file here would take the module type of whatever package.json is above the folder (the
  // repository's says ESM; the guest's /opt has none).
  fs.writeFileSync(path.join(OUT, 'package.json'), `${JSON.stringify({ private: true, type: 'commonjs' })}\n`);
  for (const name of Object.keys(entries)) {
    // launch.cjs reads NAME.cjs as latin1 and compiles it as is: no shebang, no byte above 0x7f (esbuild's
    // default charset escapes them; this guards against a change of that).
    const file = path.join(OUT, `${name}.cjs`);
    const text = fs.readFileSync(file, 'utf8').replace(/^#!.*\n/, '');
    if (/[^\x00-\x7f]/.test(text)) throw new Error(`${name}.cjs is not ASCII`);
    fs.writeFileSync(file, text);
  }
  fs.writeFileSync(path.join(OUT, 'launch.cjs'), LAUNCHER);
  let missing = [];
  for (const rel of NATIVE_FILES) {
    const from = path.join(NM, rel);
    if (!fs.existsSync(from)) {
      // Optional files (e.g. a file a newer package version dropped) are skipped; the loaders must exist.
      missing.push(rel);
      continue;
    }
    const to = path.join(OUT, 'node_modules', rel);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(from, to);
  }
  const required = ['@koromix/koffi-linux-x64/linux_x64/koffi.node'];
  const lost = missing.filter((m) => required.includes(m));
  if (lost.length) throw new Error(`missing in node_modules (run npm ci): ${lost.join(', ')}`);
  const koffiVersion = JSON.parse(fs.readFileSync(path.join(NM, 'koffi/package.json'), 'utf8')).version;
  fs.writeFileSync(path.join(OUT, 'node_modules/koffi/package.json'), `${JSON.stringify({ name: 'koffi', version: koffiVersion, main: 'index.cjs', license: 'MIT' })}\n`);
  fs.writeFileSync(path.join(OUT, 'node_modules/koffi/index.cjs'), KOFFI_LOADER.replaceAll('@VERSION@', koffiVersion));
  const sizes = fs.readdirSync(OUT).filter((f) => f.endsWith('.mjs')).map((f) => `${f} ${(fs.statSync(path.join(OUT, f)).size / 1024).toFixed(0)} KiB`);
  process.stdout.write(`bundle: ${sizes.join(', ')} + node_modules (koffi, @node-rs/crc32) in ${Date.now() - t0} ms -> ${path.relative(ROOT, OUT)}\n`);
}

main().catch((err) => {
  process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
