/**
 * npm run bench:ring-layouts: where a ring round trip's time goes, against the bare hand-off floor, between two
 * processes pinned to different vCPUs. Three layouts of the same 64 B exchange, each a raw loop on both sides
 * (no transport, no event loop), measured in alternating rounds:
 *   floor   one Int32 each way, each on its own cache line
 *   ring    this project's ring as specified (RingProducer/RingConsumer: the consumer polls `tail`, then reads the
 *           record: header words + body)
 *   slot    a prototype of the next format step: fixed 128 B slots whose sequence word is written last, which the
 *           consumer polls in place of `tail` (virtio packed-ring style), so the "it is there" signal arrives
 *           with the record's first line
 * The difference between `ring` and `slot` is what polling the record itself would save; the transport's own
 * cost is the gap between `ring` here and the ring-polling row of bench:channel.
 *
 * This is a measurement of a layout, not a protocol: `slot` has no CRC, no variable sizes and no wrap handling.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Region, regionSizeFor } from '../runner-proto/src/region/index.js';
import { RingConsumer, RingProducer } from '../runner-proto/src/ring/index.js';
import { createRegionFile, mapFile } from '../runner-proto/src/shm/index.js';
import { writeSection } from './lib/doc.js';
import { FLOOR_PING, FLOOR_PONG, floorHandoffs, serveFloor } from './lib/floor.js';
import { fmt, summarize, table, type Summary } from './lib/stats.js';

const SELF = fileURLToPath(import.meta.url);
const RING = 1024 * 1024;
const SLOTS = 8192;
const SLOT_WORDS = 32; // 128 B
const N = Number(process.env.BENCH_RTT_N ?? 50_000);
const WARM = 5000;
const ROUNDS = 3;
const PIN = (process.env.BENCH_PIN ?? '0,1').split(',');
const STOP = -1;
const CPU_ROUNDS = 15;

type Layout = 'floor' | 'ring' | 'slot';

/** Bytes of the shared buffer a layout uses: a region for the ring, two slot arrays after 4 KiB for the prototype. */
function sizeOf(layout: Layout): number {
  return layout === 'slot' ? (1024 + 2 * SLOTS * SLOT_WORDS) * 4 : regionSizeFor(RING);
}

/** Word index of message `seq`'s slot in the slot array starting at word `base`. */
function slotAt(base: number, seq: number): number {
  return base + (seq % SLOTS) * SLOT_WORDS;
}

/** A prototype record: the body from word 4, then length, type and corr, and the sequence word (word 0) last. */
function writeSlot(w: Int32Array, u8: Uint8Array, s: number, seq: number, type: number, corr: number, body: Uint8Array): void {
  u8.set(body, s * 4 + 16);
  w[s + 1] = body.length;
  w[s + 2] = type;
  w[s + 3] = corr;
  Atomics.store(w, s, seq); // last: everything above is visible once this is
}

function slotBody(w: Int32Array, u8: Uint8Array, s: number): Uint8Array {
  return u8.slice(s * 4 + 16, s * 4 + 16 + w[s + 1]!);
}

/** The far side: answers every message in a tight loop until told to stop (or 60 s pass). */
function peer(layout: Layout, file: string): void {
  const m = mapFile(file, fs.statSync(file).size);
  const w = new Int32Array(m.buffer);
  const deadline = Date.now() + 60_000;
  process.stdout.write('READY\n');
  if (layout === 'floor') {
    serveFloor(w, 0, WARM + N, 60_000);
  } else if (layout === 'ring') {
    const region = Region.attach(m.buffer);
    const rx = new RingConsumer(region.ring(0));
    const tx = new RingProducer(region.ring(1));
    for (let spins = 0; ; spins++) {
      const f = rx.read();
      if (f === undefined) {
        if ((spins & 0xffff) === 0 && Date.now() > deadline) break;
        continue;
      }
      if ('code' in f || f.corr === 0xffffffff) break;
      tx.tryWrite({ type: f.type, flags: 0, corr: f.corr, body: f.body });
      tx.publish();
      rx.release();
    }
  } else {
    const u8 = new Uint8Array(m.buffer);
    const rxBase = 1024;
    const txBase = rxBase + SLOTS * SLOT_WORDS;
    for (let i = 1; ; i++) {
      const r = slotAt(rxBase, i);
      let v = 0;
      for (let spins = 0; (v = Atomics.load(w, r)) !== i && v !== STOP; spins++) {
        if ((spins & 0xffff) === 0 && Date.now() > deadline) process.exit(1);
      }
      if (v === STOP) break;
      writeSlot(w, u8, slotAt(txBase, i), i, w[r + 2]!, w[r + 3]!, slotBody(w, u8, r));
    }
  }
  m.unmap();
  process.exit(0);
}

function startPeer(layout: Layout, file: string): Promise<ChildProcess> {
  const child = spawn('taskset', ['-c', PIN[1]!, process.execPath, SELF, 'peer', layout, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${layout} peer not ready in 10 s`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('READY')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`${layout} peer exited ${code}`)));
  });
}

/** One round of N timed exchanges (after WARM untimed ones); RTT samples in µs. */
async function round(layout: Layout): Promise<number[]> {
  const file = `/dev/shm/wasm-bridge-bench-layout-${process.pid}`;
  const size = sizeOf(layout);
  createRegionFile(file, size);
  const m = mapFile(file, size);
  const w = new Int32Array(m.buffer);
  const u8 = new Uint8Array(m.buffer);
  const region = layout === 'ring' ? Region.initialise(m.buffer, RING) : undefined;
  const child = await startPeer(layout, file);
  const out: number[] = [];
  const body = new Uint8Array(64).fill(7);
  const tx = region ? new RingProducer(region.ring(0)) : undefined;
  const rx = region ? new RingConsumer(region.ring(1)) : undefined;
  const rxBase = 1024 + SLOTS * SLOT_WORDS;
  if (layout === 'floor') floorHandoffs(w, 0, WARM + N, WARM, out, 60_000);
  for (let i = 1; layout !== 'floor' && i <= WARM + N; i++) {
    const t0 = performance.now();
    if (tx && rx) {
      tx.tryWrite({ type: 3, flags: 0, corr: i, body });
      tx.publish();
      let f;
      do f = rx.read();
      while (f === undefined);
      rx.release();
    } else {
      writeSlot(w, u8, slotAt(1024, i), i, 3, i, body);
      const r = slotAt(rxBase, i);
      while (Atomics.load(w, r) !== i);
      slotBody(w, u8, r);
    }
    if (i > WARM) out.push((performance.now() - t0) * 1000);
  }
  if (tx) {
    tx.tryWrite({ type: 3, flags: 0, corr: 0xffffffff, body });
    tx.publish();
  } else if (layout === 'slot') Atomics.store(w, slotAt(1024, WARM + N + 1), STOP);
  await new Promise((r) => child.once('exit', r));
  m.unmap();
  fs.rmSync(file, { force: true });
  return out;
}

/**
 * The CPU one round trip costs with no peer: both directions' work (write, publish, read, release) done by this
 * process on rings it owns alone, so every line it touches stays in its cache. What remains of the round trip
 * is moving lines between the two vCPUs. Median of CPU_ROUNDS batches, ns.
 */
function cpuOfRoundTrip(layout: Layout): number {
  const size = sizeOf(layout);
  const buffer = new ArrayBuffer(size);
  const w = new Int32Array(buffer);
  const u8 = new Uint8Array(buffer);
  const region = layout === 'ring' ? Region.initialise(buffer, RING) : undefined;
  const ends = region ? ([0, 1] as const).map((i) => ({ tx: new RingProducer(region.ring(i)), rx: new RingConsumer(region.ring(i)) })) : [];
  const body = new Uint8Array(64).fill(7);
  const batch = 20_000;
  const perBatch: number[] = [];
  let seq = 0;
  for (let b = 0; b < CPU_ROUNDS; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) {
      seq++;
      if (layout === 'floor') {
        Atomics.store(w, FLOOR_PING, seq);
        if (Atomics.load(w, FLOOR_PING) !== seq) throw new Error('floor');
        Atomics.store(w, FLOOR_PONG, seq);
        if (Atomics.load(w, FLOOR_PONG) !== seq) throw new Error('floor');
      } else if (layout === 'ring') {
        for (const { tx, rx } of ends) {
          tx.tryWrite({ type: 3, flags: 0, corr: seq, body });
          tx.publish();
          const f = rx.read();
          if (f === undefined || 'code' in f) throw new Error('ring');
          rx.release();
        }
      } else {
        for (const base of [1024, 1024 + SLOTS * SLOT_WORDS]) {
          const s = slotAt(base, seq);
          writeSlot(w, u8, s, seq, 3, seq, body);
          if (Atomics.load(w, s) !== seq) throw new Error('slot');
          slotBody(w, u8, s);
        }
      }
    }
    perBatch.push(((performance.now() - t0) / batch) * 1000);
  }
  return summarize(perBatch).p50;
}

async function main(): Promise<void> {
  execFileSync('taskset', ['-a', '-p', '-c', PIN[0]!, String(process.pid)], { stdio: 'ignore' });
  const samples: Record<Layout, number[]> = { floor: [], ring: [], slot: [] };
  const perRound: Record<Layout, number[]> = { floor: [], ring: [], slot: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const layout of ['floor', 'ring', 'slot'] as const) {
      const s = await round(layout);
      samples[layout].push(...s);
      perRound[layout].push(summarize(s).p50);
      process.stderr.write(`round ${r + 1} ${layout}: p50 ${fmt(summarize(s).p50, 3)} µs\n`);
    }
  }
  const floor: Summary = summarize(samples.floor);
  const label: Record<Layout, string> = {
    floor: 'floor: one Int32 each way',
    ring: 'ring as specified: poll tail, then read the record',
    slot: 'prototype: poll the record’s own sequence word',
  };
  const cpu: Record<Layout, number> = { floor: cpuOfRoundTrip('floor'), ring: cpuOfRoundTrip('ring'), slot: cpuOfRoundTrip('slot') };
  const rows = (['floor', 'ring', 'slot'] as const).map((l) => {
    const s = summarize(samples[l]);
    return [label[l], fmt(s.p50, 3), fmt(s.p99, 3), perRound[l].map((x) => fmt(x, 3)).join(' / '), `${fmt(s.p50 / floor.p50)}×`, fmt(cpu[l], 3), fmt(s.p50 - cpu[l], 3)];
  });
  const md = [
    '## Ring layouts: where a round trip goes (`npm run bench:ring-layouts`)',
    '',
    `Command: \`npm run bench:ring-layouts\` (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} vCPU, Node ${process.version}; this process on vCPU ${PIN[0]}, the peer on vCPU ${PIN[1]}; ${ROUNDS} alternating rounds of ${N} exchanges of a 64 B body, after ${WARM} untimed). Both sides are raw loops: no transport, no event loop.`,
    '',
    table(['layout (64 B, RTT µs)', 'p50', 'p99', 'p50 per round', 'vs floor', 'CPU, one process', 'p50 − CPU'], rows),
    '',
    `"CPU, one process" is the work of one round trip (both directions) done by this process alone on rings only it touches, so no cache line ever moves; "p50 − CPU" is then roughly what moving lines between the two vCPUs costs. The ring as specified moves three lines each way (the \`tail\` word, then the header and body lines it points to) where the floor moves one, and its CPU (the header's CRC32C written and checked, every length and index bounds-checked, the body copied out, a frame object made) is ${fmt(cpu.ring, 3)} µs of its ${fmt(summarize(samples.ring).p50, 3)} µs here. The prototype polls the record's own sequence word, so the "it is there" signal comes with the record's first line, and checks nothing, at ${fmt(cpu.slot, 3)} µs of CPU. Of the ${fmt(summarize(samples.ring).p50 - summarize(samples.slot).p50, 3)} µs between the two here, ${fmt(cpu.ring - cpu.slot, 3)} µs is CPU: the checks the ring must keep. Record polling alone, which addresses only the rest, did not make the real ring faster (branch \`wip/record-poll2\`, below). The transport adds about 0.2-0.3 µs to the raw ring (see bench:channel).`,
  ].join('\n');
  process.stdout.write(`${md}\n`);
  const doc = writeSection('ring-layouts', md);
  process.stdout.write(`wrote ${doc}\n`);
}

if (process.argv[2] === 'peer') peer(process.argv[3] as Layout, process.argv[4]!);
else
  main().catch((err: unknown) => {
    process.stderr.write(`bench:ring-layouts: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
