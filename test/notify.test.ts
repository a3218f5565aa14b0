import test from 'ava';
import fs from 'node:fs';
import { LocalSystem } from '../agent/src/launch/index.js';
import { example } from './helpers/paths.js';

for (const notify of ['polling', 'futex', 'socket'] as const) {
  test(`runs end to end with ${notify} notification on both sides`, async (t) => {
    const sys = new LocalSystem({ transport: 'ring', notify });
    await sys.start();
    try {
      t.is((await sys.cli(['upload', example('hello')])).code, 0);
      for (let i = 0; i < 3; i++) {
        const r = await sys.cli(['run', 'hello', '--', String(i)]);
        t.is(r.stdout, `hello from wasm\n${i}\n`);
      }
      if (notify === 'socket') t.true(fs.existsSync(`${sys.region}.bell`), 'doorbell socket beside the region');
    } finally {
      await sys.stop();
    }
    t.false(fs.existsSync(`${sys.region}.bell`), 'doorbell socket removed');
  });
}

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

for (const notify of ['futex', 'socket'] as const) {
  test(`idle agent and runner burn (almost) no CPU with the ${notify} blocking wait`, async (t) => {
    const sys = new LocalSystem({ transport: 'ring', notify });
    await sys.start();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const a0 = cpuTicks(sys.agent!.pid!);
      const r0 = cpuTicks(sys.runner!.pid!);
      await new Promise((r) => setTimeout(r, 3000));
      const agent = cpuTicks(sys.agent!.pid!) - a0;
      const runner = cpuTicks(sys.runner!.pid!) - r0;
      t.log(`idle ticks over 3 s (100 per CPU-second): agent ${agent}, runner ${runner}`);
      // 3 ticks = 1% of one CPU over the window; a polling loop would use 15+ (see docs/benchmarks.md).
      t.true(agent <= 3, `agent used ${agent} ticks`);
      t.true(runner <= 3, `runner used ${runner} ticks`);
    } finally {
      await sys.stop();
    }
  });
}
