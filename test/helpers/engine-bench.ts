/**
 * Engine-level measurements (no channel): reactor call rate on one instance, warm vs cold start to first output,
 * memory per warm pooled instance, gas overhead on nbody. Importable (the runner benchmark can reuse these) and
 * runnable: `node --expose-gc dist/test/helpers/engine-bench.js [calls|start|memory|gas|all]`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { type RunEvents, V8Engine, type WasmValue } from '../../runner-proto/src/engine/index.js';
import { createLogger } from '../../runner-proto/src/log/index.js';
import { example } from './paths.js';

const logger = createLogger('engine-bench', { level: 'silent' });
const quiet: RunEvents = { onStdout: () => {}, onStderr: () => {} };
const bytes = (name: string): Uint8Array => readFileSync(example(name));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? NaN;
}

export interface CallRates {
  /** One call at a time, each awaited. */
  readonly sequential: number;
  /** Batches of `window` calls issued together, awaited together. */
  readonly pipelined: number;
  /** `lanes` independent callers, each awaiting its own calls. */
  readonly lanes: number;
}

export async function measureCalls(seconds = 1, window = 256, laneCount = 64): Promise<CallRates> {
  const engine = new V8Engine({ poolSize: 0, logger });
  try {
    const calc = await engine.compile('calc', bytes('calc'));
    const inst = await engine.instantiate(calc, { argv0: 'calc.wasm', args: [], env: {} }, quiet);
    const args: WasmValue[] = [
      { type: 'i32', value: 2 },
      { type: 'i32', value: 3 },
    ];
    const rate = async (body: () => Promise<number>): Promise<number> => {
      await body(); // warm-up round (tier-up, caches)
      const t = performance.now();
      let n = 0;
      while (performance.now() - t < seconds * 1000) n += await body();
      return n / ((performance.now() - t) / 1000);
    };
    const sequential = await rate(async () => {
      for (let i = 0; i < 1000; i++) if (!(await inst.call('add', args)).ok) throw new Error('call failed');
      return 1000;
    });
    const pipelined = await rate(async () => {
      const all = await Promise.all(Array.from({ length: window }, () => inst.call('add', args)));
      if (!all.every((r) => r.ok)) throw new Error('call failed');
      return window;
    });
    const lanes = await rate(async () => {
      let n = 0;
      await Promise.all(
        Array.from({ length: laneCount }, async () => {
          for (let i = 0; i < 100; i++) {
            await inst.call('add', args);
            n++;
          }
        }),
      );
      return n;
    });
    await inst.close();
    return { sequential, pipelined, lanes };
  } finally {
    await engine.close();
  }
}

export interface StartTimes {
  readonly warmP50: number;
  readonly warmP90: number;
  readonly coldP50: number;
  readonly coldP90: number;
  readonly warmShare: number;
}

/** Request → first stdout byte of hello, warm (prewarmed pool) and cold (generic worker, instantiate on demand). */
export async function measureStart(runs = 200, pauseMs = 2): Promise<StartTimes> {
  const firstOutput = async (engine: V8Engine, warm: boolean): Promise<{ ms: number[]; warm: number }> => {
    const hello = await engine.compile('hello', bytes('hello'));
    if (warm) await engine.prewarm(hello, 2);
    const ms: number[] = [];
    let warmCount = 0;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      let first: number | undefined;
      const r = await engine.run(hello, { argv0: 'hello.wasm', args: [String(i)], env: {} }, { onStdout: () => (first ??= performance.now() - t), onStderr: () => {} }).result;
      if (r.stats.start === 'warm') warmCount++;
      ms.push(first ?? NaN);
      await sleep(pauseMs);
    }
    return { ms, warm: warmCount };
  };
  const warmEngine = new V8Engine({ poolSize: 0, logger });
  const coldEngine = new V8Engine({ poolSize: 1, logger });
  try {
    const warm = await firstOutput(warmEngine, true);
    const cold = await firstOutput(coldEngine, false);
    return {
      warmP50: percentile(warm.ms, 0.5),
      warmP90: percentile(warm.ms, 0.9),
      coldP50: percentile(cold.ms, 0.5),
      coldP90: percentile(cold.ms, 0.9),
      warmShare: warm.warm / runs,
    };
  } finally {
    await Promise.all([warmEngine.close(), coldEngine.close()]);
  }
}

export interface MemoryPerInstance {
  readonly instancesPerWorker: number;
  readonly instances: number;
  /** RSS growth per ready instance, minus its linear memory. */
  readonly beyondLinearMiB: number;
}

/** RSS per warm pooled instance (hello: 2 pages of linear memory), and per reactor instance (calc). */
export async function measureMemory(instances = 16, perWorker: readonly number[] = [1, 4, 8]): Promise<{ pooled: MemoryPerInstance[]; reactorMiB: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async () => {
    gc?.();
    await sleep(500);
  };
  const pooled: MemoryPerInstance[] = [];
  for (const k of perWorker) {
    const engine = new V8Engine({ poolSize: 0, instancesPerWorker: k, logger });
    const hello = await engine.compile('hello', bytes('hello'));
    await settle();
    const before = process.memoryUsage().rss;
    const ready = await engine.prewarm(hello, instances);
    await settle();
    const grown = process.memoryUsage().rss - before;
    pooled.push({ instancesPerWorker: k, instances: ready, beyondLinearMiB: (grown / ready - 2 * 65536) / 1048576 });
    await engine.close();
    await settle();
  }
  const engine = new V8Engine({ poolSize: 0, logger });
  const calc = await engine.compile('calc', bytes('calc'));
  await settle();
  const before = process.memoryUsage().rss;
  const all = [];
  for (let i = 0; i < instances; i++) all.push(await engine.instantiate(calc, { argv0: 'calc.wasm', args: [], env: {} }, quiet));
  await settle();
  const per = (process.memoryUsage().rss - before) / instances - (all[0]?.memoryBytes() ?? 0);
  await engine.close();
  return { pooled, reactorMiB: per / 1048576 };
}

export interface GasOverhead {
  readonly plainMs: number;
  readonly gasMs: number;
  /** gasMs / plainMs - 1, from the medians. */
  readonly overhead: number;
  readonly instructions: number;
}

/** nbody with and without gas, alternating, median of `rounds`. */
export async function measureGas(steps = 5_000_000, rounds = 7): Promise<GasOverhead> {
  const engine = new V8Engine({ poolSize: 2, logger });
  try {
    const nbody = await engine.compile('nbody', bytes('nbody'));
    const one = async (gas: boolean) =>
      (await engine.run(nbody, { argv0: 'nbody.wasm', args: [String(steps)], env: {}, limits: gas ? { gas: 1e15 } : {} }, quiet).result).stats;
    await one(false);
    await one(true);
    const plain: number[] = [];
    const metered: number[] = [];
    let instructions = 0;
    for (let i = 0; i < rounds; i++) {
      plain.push((await one(false)).wallMs);
      const s = await one(true);
      metered.push(s.wallMs);
      instructions = s.instructions ?? 0;
    }
    const plainMs = percentile(plain, 0.5);
    const gasMs = percentile(metered, 0.5);
    return { plainMs, gasMs, overhead: gasMs / plainMs - 1, instructions };
  } finally {
    await engine.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const what = process.argv[2] ?? 'all';
  if (what === 'calls' || what === 'all') console.log('calls/s on one instance', await measureCalls());
  if (what === 'start' || what === 'all') console.log('request → first output (ms)', await measureStart());
  if (what === 'memory' || what === 'all') console.log('memory', JSON.stringify(await measureMemory()));
  if (what === 'gas' || what === 'all') console.log('gas on nbody', await measureGas());
}
