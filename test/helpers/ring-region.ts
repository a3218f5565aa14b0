import type { ExecutionContext } from 'ava';
import fs from 'node:fs';
import type { RingLink } from '../../runner-proto/src/channel/index.js';

/** A region path for this test, and the links it opens: all closed, and the file removed, when it ends. */
export function scratchRegion(t: ExecutionContext, name: string): { path: string; links: RingLink[] } {
  const path = `/dev/shm/wasm-bridge-test-${process.pid}-${name}`;
  const links: RingLink[] = [];
  t.teardown(async () => {
    for (const l of links) await l.close().catch(() => {});
    fs.rmSync(path, { force: true });
  });
  return { path, links };
}

