/**
 * `npm run demo`: starts a runner and an agent connected through a shared-memory ring in /dev/shm, uploads and
 * runs the examples with the real `wasmedge_emit` CLI, hot-deploys a new version, and shuts everything down,
 * checking that no process or /dev/shm file is left behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalSystem } from '../agent/src/launch/index.js';

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
const wasm = (name: string, file = name): string => path.relative(process.cwd(), path.join(EXAMPLES, name, `${file}.wasm`));

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

async function main(): Promise<number> {
  const t0 = performance.now();
  const sys = new LocalSystem({ transport: 'ring' });
  process.stdout.write(bold(`# starting runner (region ${sys.region}) and agent (socket ${sys.agentSocket})\n`));
  let failures = 0;
  try {
    await sys.start();
    process.stdout.write(`ready in ${(performance.now() - t0).toFixed(0)} ms\n\n`);
    const step = async (args: string[], expectCode: number): Promise<void> => {
      process.stdout.write(bold(`$ wasmedge_emit ${args.join(' ')}\n`));
      const t = performance.now();
      const r = await sys.cli(args);
      process.stdout.write(r.stdout);
      process.stdout.write(r.stderr);
      const ok = r.code === expectCode;
      if (!ok) failures++;
      process.stdout.write(`[exit ${r.code}${ok ? '' : `, expected ${expectCode}`}; ${(performance.now() - t).toFixed(0)} ms]\n\n`);
    };
    await step(['upload', wasm('hello')], 0);
    await step(['upload', wasm('nbody')], 0);
    await step(['upload', wasm('trap')], 0);
    await step(['ls'], 0);
    await step(['run', 'hello', '--env', 'GREETING=seL4', '--', 'alpha', 'beta'], 0);
    await step(['run', 'hello', '--', '--exit', '3'], 3);
    await step(['run', 'nbody', '--', '1000'], 0);
    await step(['run', 'trap'], 134);
    process.stdout.write(bold('# hot deploy: a new version of hello under the same name\n'));
    await step(['upload', wasm('hello', 'hello-v2'), '--name', 'hello'], 0);
    await step(['run', 'hello'], 0);
    await step(['status'], 0);
  } finally {
    const exits = await sys.stop();
    const leftover = fs.existsSync(sys.region);
    process.stdout.write(bold('# shut down\n'));
    process.stdout.write(`agent exit ${exits.agentExit}, runner exit ${exits.runnerExit}, /dev/shm region ${leftover ? 'LEFT BEHIND' : 'removed'}\n`);
    if (leftover || exits.agentExit !== 0 || exits.runnerExit !== 0) failures++;
  }
  process.stdout.write(`\ndemo ${failures === 0 ? 'completed' : `had ${failures} unexpected results`} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
