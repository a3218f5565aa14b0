/**
 * Crash-test writer for test/state-desired.test.ts: opens a DesiredState at argv[2], prints "ready", then puts
 * and removes apps forever, printing each generation once it is durable ("acked N"), until SIGKILLed.
 */
import fs from 'node:fs';
import { DesiredState } from '../../agent/src/state/index.js';
import { createLogger } from '../../runner-proto/src/log/index.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/**
 * Straight into the pipe before the next change starts. process.stdout queues in this process when the reader
 * lags (a busy test runner), and SIGKILL drops the queue: the parent would then see fewer acknowledgements
 * than were made and take a state file that is ahead of them for a lost change.
 */
function say(line: string): void {
  const buf = Buffer.from(line);
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: agent-state-crash-child <dir>');
  const ds = await DesiredState.open(dir, createLogger('crash', { level: 'silent' }));
  say('ready\n');
  for (let i = 1; ; i++) {
    const name = `app-${i % 7}`;
    say(`begin ${name}\n`);
    if (i % 5 === 0) await ds.remove(name);
    else {
      await ds.put({
        name,
        digest: DIGEST,
        kind: 'command',
        options: { args: ['x'.repeat(i % 300)], env: { I: String(i) }, preopens: [], limits: {}, pool: { min: 0, max: 1, idleMs: 1000 } },
        autostart: true,
        running: true,
        generation: i,
        updatedAt: new Date().toISOString(),
      });
    }
    say(`acked ${name} ${i % 5 === 0 ? 'removed' : i}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
