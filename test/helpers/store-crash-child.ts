/**
 * Crash-test writer for test/store.test.ts: opens the store at argv[2], prints "ready", then puts and names
 * random modules forever (put, putStream, putNamed), until the parent SIGKILLs it at a random moment. Sizes
 * go up to 512 KiB so that kills regularly land mid-write rather than between operations.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { ModuleStore } from '../../agent/src/store/index.js';

const WASM_HEADER = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function main(): Promise<void> {
  const root = process.argv[2];
  if (root === undefined) throw new Error('usage: store-crash-child <root>');
  const store = await ModuleStore.open(root, { unnamedGraceMs: 0 });
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) {
    const body = randomBytes(randomInt(1, 512 * 1024));
    const bytes = Buffer.concat([WASM_HEADER, body]);
    const name = `mod-${randomInt(0, 6)}`;
    const meta = { kind: i % 3 === 0 ? 'reactor' : 'command', seq: i };
    if (i % 3 === 2) {
      // A deploy's path: the blob written in place, the name alongside it.
      const { named } = store.putNamed(bytes, name, meta);
      await named;
    } else {
      const { digest } = i % 3 === 0 ? await store.put(bytes) : await store.putStream(chunks(bytes, 16 * 1024));
      await store.setName(name, digest, meta);
    }
    if (randomInt(0, 4) === 0) await store.remove(`mod-${randomInt(0, 6)}`).catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
