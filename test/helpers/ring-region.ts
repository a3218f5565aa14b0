import type { ExecutionContext } from 'ava';
import fs from 'node:fs';
import { attachRing, createRing, type RingLink, type RingOptions } from '../../runner-proto/src/channel/index.js';

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


/** A runner side that creates a region of `ringSize`-byte rings and an agent side attached to it, both closed at the end. */
export async function ringPair(t: ExecutionContext, name: string, ringSize: number, agentOptions: Omit<RingOptions, 'path'> = {}): Promise<{ runner: RingLink; agent: RingLink }> {
  const { path, links } = scratchRegion(t, name);
  const runner = createRing({ path, ringSize });
  links.push(runner);
  const agent = await attachRing({ path, timeoutMs: 2000, ...agentOptions });
  links.push(agent);
  return { runner, agent };
}
