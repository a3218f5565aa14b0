/**
 * npm run bench:channel: the channel against its peers, measured in one run between the same two processes.
 * RTT of 64 B frames (bare hand-off floor, ring with polling, ring with futex wait, Unix socket), throughput of
 * 64 KiB frames (ring, ring with body CRC, Unix socket, in-process copy as the ceiling), deploy of 1 and 16 MiB
 * modules to a real runner, and idle CPU of agent + runner. Prints a table and rewrites its section of
 * docs/benchmarks.md. Samples are kept whole: a failed measurement is reported as such, not dropped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalSystem, RUNNER_MAIN } from '../agent/src/launch/index.js';
import { RunnerLink } from '../agent/src/link/index.js';
import { crc32cImplementation } from '../runner-proto/src/crc/index.js';
import type { Frame } from '../runner-proto/src/frame/index.js';
import { FLAG_BODY_CRC } from '../runner-proto/src/frame/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { FutexNotifier, PollingNotifier, SocketNotifier, type Notifier } from '../runner-proto/src/notify/index.js';
import { MsgType } from '../runner-proto/src/protocol/index.js';
import { Region, Side, regionSizeFor } from '../runner-proto/src/region/index.js';
import { RingConsumer, RingProducer } from '../runner-proto/src/ring/index.js';
import { createRegionFile, mapFile, type Mapping } from '../runner-proto/src/shm/index.js';
import { RingTransport } from '../runner-proto/src/transport/index.js';
import { bigModule } from '../test/helpers/modules.js';
import { writeSection } from './lib/doc.js';
import { FLOOR_BLOCK, FLOOR_BYTES, floorHandoffs } from './lib/floor.js';
import { fmt, quantiles, summarize, table, type Summary } from './lib/stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PEER = path.join(HERE, 'channel-peer.js');
const RING = Number(process.env.BENCH_RING ?? 1024 * 1024);
const RTT_N = Number(process.env.BENCH_RTT_N ?? 100_000);
/** The floor and the polling ring run interleaved in blocks of this many exchanges (RTT_N of each in all). */
const RTT_BLOCK = Number(process.env.BENCH_RTT_BLOCK ?? 2000);
/** Exchanges at the start of each block that are not counted: the peer switching between floor and ring. */
const RTT_SKIP = 200;
const TP_FRAMES = Number(process.env.BENCH_TP_FRAMES ?? 4096); // 256 MiB of 64 KiB frames
/** Throughput: untimed passes for this long first, then this many timed passes (see steadyThroughput). */
const TP_WARM_MS = 500;
const TP_REPS = 7;
const KiB64 = 64 * 1024;
const MiB = 1024 * 1024;
const tag = `${process.pid}`;
/** BENCH_ONLY=rtt,tp,deploy,idle runs only those parts (and then leaves docs/benchmarks.md alone). */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'rtt,tp,deploy,idle').split(',').map((s) => s.trim()));
const PARTIAL = ['rtt', 'tp', 'deploy', 'idle'].some((p) => !ONLY.has(p));
const shm = (name: string): string => `/dev/shm/wasm-bridge-bench-${name}-${tag}`;

/**
 * BENCH_PIN=M,N puts this process on vCPU M and the peer on vCPU N for the RTT and throughput parts (the
 * deploy and idle parts run unpinned). Both ends then always sit on different vCPUs, as an agent in a guest and
 * a runner on its own seL4 core do, whatever else the machine runs; the socket shows its across-vCPU mode.
 * Unpinned, the scheduler sometimes puts two spinning ends on one vCPU, which is what makes results bimodal.
 */
const PIN = process.env.BENCH_PIN?.split(',');
const PEER_CPU = PIN?.[1];

/** Sets the CPU affinity of every thread of this process (`taskset -a`); undefined restores all CPUs. */
function pinSelf(cpu: string | undefined): void {
  if (PIN === undefined) return;
  execFileSync('taskset', ['-a', '-p', '-c', cpu ?? `0-${os.cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
}

function startPeer(args: string[]): Promise<ChildProcess> {
  const argv = [process.execPath, ...process.execArgv, PEER, ...args]; // e.g. --cpu-prof reaches the peer too
  if (PEER_CPU !== undefined) argv.unshift('taskset', '-c', PEER_CPU);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`peer ${args[0]} not ready`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('READY')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`peer ${args[0]} exited ${code}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Which vCPU a process last ran on (field 39 of /proc/PID/stat): tells the socket's mode. */
function lastCpu(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[36]);
}

function makeRegion(name: string): { file: string; map: Mapping; region: Region } {
  const file = shm(name);
  createRegionFile(file, regionSizeFor(RING));
  const map = mapFile(file, regionSizeFor(RING));
  return { file, map, region: Region.initialise(map.buffer, RING) };
}

/** One block of the paired measurement: the p50 (µs) of its floor part and of its ring part. */
interface Block {
  readonly floor: number;
  readonly poll: number;
}

/**
 * The floor and the polling ring on the same two processes, interleaved in blocks of RTT_BLOCK exchanges: the peer
 * is one RingTransport (polling) echoing 64 B frames as the runner does, and a FLOOR_BLOCK frame makes its handler serve a block of
 * bare hand-offs on a second shared page. Host noise here moves both by a factor of two within seconds; blocks a
 * few milliseconds long put the two rows under the same conditions, and each block gives a ratio of its own.
 * Our side spins on the raw ring; the first RTT_SKIP exchanges of each block (the switch) are not counted.
 */
async function floorAndRingPaired(): Promise<{ floor: number[]; poll: number[]; blocks: Block[] }> {
  const { file, map, region } = makeRegion('poll');
  const floorFile = shm('floor');
  createRegionFile(floorFile, FLOOR_BYTES);
  const floorMap = mapFile(floorFile, FLOOR_BYTES);
  const w = new Int32Array(floorMap.buffer);
  const peer = await startPeer(['ring-echo', file, 'polling', floorFile]);
  const tx = new RingProducer(region.ring(0));
  const rx = new RingConsumer(region.ring(1));
  const body = new Uint8Array(64);
  const ask = new Uint8Array(8);
  const askView = new DataView(ask.buffer);
  const out = { floor: [] as number[], poll: [] as number[], blocks: [] as Block[] };
  let handoffs = 0;
  const ringBlock = (n: number, into: number[]): void => {
    const deadline = performance.now() + 10_000;
    const echo = { type: MsgType.ECHO, flags: 0, corr: 0, body };
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      echo.corr = i;
      if (!tx.tryWrite(echo)) throw new Error('ring full: the peer is not answering');
      tx.publish();
      let f;
      for (let k = 1; (f = rx.read()) === undefined; k++) {
        if ((k & 1023) === 0 && performance.now() > deadline) throw new Error('ring: no answer within 10 s');
      }
      if ('code' in f) throw new Error(`ring fault: ${f.code}`);
      rx.release();
      if (i >= RTT_SKIP) into.push((performance.now() - t0) * 1000);
    }
  };
  const floorBlock = (n: number, into: number[]): void => {
    askView.setUint32(0, handoffs, true);
    askView.setUint32(4, n, true);
    if (!tx.tryWrite({ type: MsgType.CALL, flags: 0, corr: FLOOR_BLOCK, body: ask })) throw new Error('ring full: the peer is not answering');
    tx.publish();
    floorHandoffs(w, handoffs, n, RTT_SKIP, into, 10_000);
    handoffs += n;
  };
  try {
    ringBlock(10_000, []); // JIT and caches, both sides
    floorBlock(10_000, []);
    const blocks = Math.ceil(RTT_N / RTT_BLOCK);
    for (let b = 0; b < blocks; b++) {
      const f: number[] = [];
      const p: number[] = [];
      floorBlock(RTT_BLOCK + RTT_SKIP, f);
      ringBlock(RTT_BLOCK + RTT_SKIP, p);
      out.floor.push(...f);
      out.poll.push(...p);
      out.blocks.push({ floor: summarize(f).p50, poll: summarize(p).p50 });
    }
  } finally {
    await stop(peer);
    map.unmap();
    floorMap.unmap();
    fs.rmSync(file);
    fs.rmSync(floorFile);
  }
  return out;
}

/** Ring RTT where both sides use RingTransport with the given notifier (the blocking wait). */
async function ringTransportRtt(peerMode: string, ours: () => Notifier, n: number): Promise<number[]> {
  const { file, map, region } = makeRegion(peerMode.replace(/[^a-z-]/g, '').slice(0, 16));
  const peer = await startPeer(['ring-echo', file, peerMode]);
  const hotUs = peerMode.includes('-cold') ? 0 : undefined;
  const t = new RingTransport({ region, side: Side.Agent, notifier: ours(), baseAddress: map.address, hotUs });
  let wake: (() => void) | undefined;
  t.start({ frame: () => wake?.(), fault: () => undefined, closed: () => undefined });
  const body = new Uint8Array(64);
  const out: number[] = [];
  for (let i = 0; i < n + 1000; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((r) => (wake = r));
    await t.send({ type: MsgType.ECHO, flags: 0, corr: i, body });
    await got;
    if (i >= 1000) out.push((performance.now() - t0) * 1000);
  }
  await t.close();
  await stop(peer);
  map.unmap();
  fs.rmSync(file);
  return out;
}

async function socketRtt(): Promise<{ samples: number[]; sameCpu: number }> {
  const sockPath = path.join(os.tmpdir(), `bench-echo-${tag}.sock`);
  const peer = await startPeer(['socket-echo', sockPath]);
  const sock = net.connect(sockPath);
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const body = Buffer.alloc(64, 1);
  const out: number[] = [];
  let same = 0;
  const n = Math.min(RTT_N, 20_000);
  for (let i = 0; i < n + 1000; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const on = (c: Buffer): void => {
        got += c.length;
        if (got >= 64) {
          sock.off('data', on);
          resolve();
        }
      };
      sock.on('data', on);
      sock.write(body);
    });
    if (i >= 1000) {
      out.push((performance.now() - t0) * 1000);
      if (i % 1000 === 0 && lastCpu(process.pid) === lastCpu(peer.pid!)) same++;
    }
  }
  sock.destroy();
  await stop(peer);
  return { samples: out, sameCpu: same / Math.floor(n / 1000) };
}

/**
 * Runs `rep` (one pass of TP_FRAMES 64 KiB frames, returning once they have all arrived) untimed for TP_WARM_MS,
 * then TP_REPS times timed, and returns MiB/s per timed pass. A rep count alone did not warm up: the ring's rate
 * climbs for 0.15-0.2 s after traffic starts (2-7 GB/s in its first 0.1 s, 25-33 GB/s from 0.2 s; the JIT had
 * finished within the first pass, and an idle second before sending changed nothing), so the first passes after
 * a single discarded one still measured the ramp. All three throughput rows use this, the socket and the copy too.
 */
async function steadyThroughput(rep: () => Promise<void> | void): Promise<number[]> {
  const warmUntil = performance.now() + TP_WARM_MS;
  do await rep();
  while (performance.now() < warmUntil);
  const out: number[] = [];
  for (let i = 0; i < TP_REPS; i++) {
    const t0 = performance.now();
    await rep();
    out.push((TP_FRAMES * KiB64) / MiB / ((performance.now() - t0) / 1000));
  }
  return out;
}

async function ringThroughput(flags: number): Promise<number[]> {
  const { file, map, region } = makeRegion(`tp${flags}`);
  const peer = await startPeer(['ring-sink', file, 'polling']);
  const t = new RingTransport({ region, side: Side.Agent, notifier: new PollingNotifier(), baseAddress: map.address });
  let done: ((f: Frame) => void) | undefined;
  t.start({ frame: (f) => done?.(f), fault: () => undefined, closed: () => undefined });
  const body = randomBytes(KiB64);
  try {
    return await steadyThroughput(async () => {
      const end = new Promise<Frame>((r) => (done = r));
      for (let i = 0; i < TP_FRAMES; i++) {
        const p = t.send({ type: MsgType.MODULE_CHUNK, flags, corr: 1, body });
        if (i % 64 === 63) await p;
      }
      await t.send({ type: MsgType.MODULE_END, flags: 0, corr: 1, body: new Uint8Array(0) });
      t.expectAnswer(true); // as Endpoint.request does for the real MODULE_END
      const f = await end;
      t.expectAnswer(false);
      const got = Number(Buffer.from(f.body).toString());
      if (got !== TP_FRAMES * KiB64) throw new Error(`sink counted ${got} bytes of ${TP_FRAMES * KiB64}`);
    });
  } finally {
    await t.close();
    await stop(peer);
    map.unmap();
    fs.rmSync(file);
  }
}

async function socketThroughput(): Promise<number[]> {
  const sockPath = path.join(os.tmpdir(), `bench-sink-${tag}.sock`);
  const peer = await startPeer(['socket-sink', sockPath, String(TP_FRAMES * KiB64)]);
  const sock = net.connect(sockPath);
  await new Promise((r) => sock.once('connect', r));
  const body = randomBytes(KiB64);
  const out = await steadyThroughput(async () => {
    const ack = new Promise((r) => sock.once('data', r));
    for (let i = 0; i < TP_FRAMES; i++) {
      if (!sock.write(body)) await new Promise((r) => sock.once('drain', r));
    }
    await ack;
  });
  sock.destroy();
  await stop(peer);
  return out;
}

function copyThroughput(): Promise<number[]> {
  const src = randomBytes(KiB64);
  const dst = new Uint8Array(RING);
  return steadyThroughput(() => {
    for (let i = 0; i < TP_FRAMES; i++) dst.set(src, (i * KiB64) & (RING - 1));
  });
}

function moduleOf(size: number): Buffer {
  const hello = fs.readFileSync(path.resolve(HERE, '../../examples/hello/hello.wasm'));
  // Random padding: every sample is a module the runner has never seen.
  const m = bigModule(hello, size - hello.length - 16);
  randomFillSync(m, m.length - (size - hello.length - 16));
  return m;
}

async function deployTimes(): Promise<Map<number, number[]>> {
  const region = shm('deploy');
  const runner = spawn(process.execPath, [RUNNER_MAIN, '--region', region, '--notify', 'futex'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LOG_LEVEL: 'error' } });
  await new Promise<void>((resolve) => runner.stdout!.on('data', (c: Buffer) => c.toString().includes('READY') && resolve()));
  const link = new RunnerLink({ kind: 'ring', path: region, notify: 'futex' }, createLogger('bench', { level: 'error' }));
  link.start();
  await link.connected(10_000);
  const res = new Map<number, number[]>();
  for (const size of [1 * MiB, 16 * MiB]) {
    const samples: number[] = [];
    for (let i = 0; i < 9; i++) {
      const m = moduleOf(size);
      const digest = `sha256:${createHash('sha256').update(m).digest('hex')}`;
      const t0 = performance.now();
      await link.ensureModule(digest, async () => m);
      if (i > 0) samples.push(performance.now() - t0);
    }
    res.set(size, samples);
  }
  await link.close();
  await stop(runner);
  fs.rmSync(region, { force: true });
  return res;
}

/** Ring RTT with doorbells as bytes over a Unix socket that this process listens on (`suffix` -cold: no hot phase). */
async function socketBellRtt(suffix: string): Promise<number[]> {
  const bellPath = path.join(os.tmpdir(), `bench-bell-${tag}.sock`);
  fs.rmSync(bellPath, { force: true });
  const ours = new SocketNotifier();
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    ours.attach(c);
  });
  await new Promise<void>((r) => server.listen(bellPath, r));
  try {
    return await ringTransportRtt(`socket${suffix}:${bellPath}`, () => ours, 20_000);
  } finally {
    server.close();
    fs.rmSync(bellPath, { force: true });
  }
}

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function idleCpu(notify: 'polling' | 'futex'): Promise<{ agent: number; runner: number }> {
  const sys = new LocalSystem({ transport: 'ring', notify });
  await sys.start();
  await new Promise((r) => setTimeout(r, 1000));
  const a0 = cpuTicks(sys.agent!.pid!);
  const r0 = cpuTicks(sys.runner!.pid!);
  const secs = 5;
  await new Promise((r) => setTimeout(r, secs * 1000));
  const tick = 100; // USER_HZ
  const res = { agent: ((cpuTicks(sys.agent!.pid!) - a0) / tick / secs) * 100, runner: ((cpuTicks(sys.runner!.pid!) - r0) / tick / secs) * 100 };
  await sys.stop();
  return res;
}

type Row = { name: string; unit: string; s?: Summary; error?: string; value?: (s: Summary) => number };

async function measure(name: string, unit: string, f: () => Promise<number[]> | number[], part?: string): Promise<Row> {
  if (part !== undefined && !ONLY.has(part)) return { name, unit, error: 'not run (BENCH_ONLY)' };
  try {
    return { name, unit, s: summarize(await f()) };
  } catch (err) {
    return { name, unit, error: err instanceof Error ? err.message : String(err) };
  }
}

/** The spread of the per-block p50s and of their ratios, as deciles: what a single whole-run ratio hides. */
function blockSummary(blocks: readonly Block[]): string {
  const dec = (xs: number[]): string => quantiles(xs, [0.1, 0.5, 0.9]).map((x) => fmt(x)).join(' / ');
  const ratios = blocks.map((b) => b.poll / b.floor);
  const within = ratios.filter((r) => r <= 5).length;
  return `The floor and the polling ring ran interleaved on the same two processes, in ${blocks.length} blocks of ${RTT_BLOCK} exchanges each (p10 / p50 / p90 over the blocks): floor p50 ${dec(blocks.map((b) => b.floor))} µs, ring p50 ${dec(blocks.map((b) => b.poll))} µs, ring / floor ${dec(ratios)}×; ${within} of ${blocks.length} blocks within 5×.`;
}

async function main(): Promise<void> {
  process.stderr.write(`bench:channel  ${os.cpus().length} vCPU, node ${process.version}, crc32c ${crc32cImplementation}, ring ${RING / MiB} MiB\n`);
  pinSelf(PIN?.[0]);
  // The floor is bimodal on this VM (it moves between about 0.2 and 0.6 µs from one minute to the next): the two
  // rows the target compares run interleaved on the same two processes, so both see the same modes.
  const paired = ONLY.has('rtt') ? floorAndRingPaired() : undefined;
  const floor = await measure('bare hand-off floor (Int32 each way)', 'µs', async () => (await paired!).floor, 'rtt');
  const poll = await measure('ring, polling (64 B)', 'µs', async () => (await paired!).poll, 'rtt');
  const blocks = (await paired?.catch(() => undefined))?.blocks ?? [];
  const futex = await measure('ring, futex wait (default: 200 µs hot phase)', 'µs', () => ringTransportRtt('futex', () => new FutexNotifier(), 20_000), 'rtt');
  const sockBell = await measure('ring, socket doorbell (default: 200 µs hot phase)', 'µs', () => socketBellRtt(''), 'rtt');
  const block = await measure('ring, futex, always asleep (no hot phase)', 'µs', () => ringTransportRtt('futex-cold', () => new FutexNotifier(), 20_000), 'rtt');
  const sockBellCold = await measure('ring, socket doorbell, always asleep (no hot phase)', 'µs', () => socketBellRtt('-cold'), 'rtt');
  let sameCpu = NaN;
  const sock = await measure('Unix socket (64 B)', 'µs', async () => {
    const r = await socketRtt();
    sameCpu = r.sameCpu;
    return r.samples;
  }, 'rtt');
  const tpRing = await measure('ring, 64 KiB frames', 'MiB/s', () => ringThroughput(0), 'tp');
  const tpRingCrc = await measure('ring, 64 KiB frames + body CRC32C', 'MiB/s', () => ringThroughput(FLAG_BODY_CRC), 'tp');
  const tpSock = await measure('Unix socket, 64 KiB writes', 'MiB/s', socketThroughput, 'tp');
  const tpCopy = await measure('in-process copy (ceiling)', 'MiB/s', copyThroughput, 'tp');
  pinSelf(undefined);
  let deploy = new Map<number, number[]>();
  if (ONLY.has('deploy')) {
    try {
      deploy = await deployTimes();
    } catch (err) {
      process.stderr.write(`deploy failed: ${String(err)}\n`);
    }
  }
  const idle: Record<string, { agent: number; runner: number } | string> = {};
  for (const mode of ['polling', 'futex'] as const) {
    if (!ONLY.has('idle')) continue;
    try {
      idle[mode] = await idleCpu(mode);
    } catch (err) {
      idle[mode] = String(err);
    }
  }

  const rtt = [floor, poll, futex, sockBell, block, sockBellCold, sock];
  const rttRows = rtt.map((r) =>
    r.s
      ? [r.name, fmt(r.s.p50), fmt(r.s.p99), `${fmt(r.s.mean)} ± ${fmt(r.s.sePct, 1)}%`, floor.s ? `${fmt(r.s.p50 / floor.s.p50)}×` : 'n/a', sock.s ? `${fmt(r.s.p50 / sock.s.p50, 3)}×` : 'n/a']
      : [r.name, 'Errored', r.error ?? '', '', '', ''],
  );
  const tp = [tpRing, tpRingCrc, tpSock, tpCopy];
  const tpRows = tp.map((r) =>
    r.s
      ? [r.name, fmt(r.s.p50), `${fmt(r.s.mean)} ± ${fmt(r.s.sePct, 1)}%`, tpSock.s ? `${fmt(r.s.p50 / tpSock.s.p50)}×` : 'n/a', tpCopy.s ? `${fmt((100 * r.s.p50) / tpCopy.s.p50, 1)}%` : 'n/a']
      : [r.name, 'Errored', r.error ?? '', '', ''],
  );
  const depRows = [...deploy].map(([size, s]) => {
    const x = summarize(s);
    return [`${size / MiB} MiB module (new to the runner)`, fmt(x.p50, 1), fmt(x.p99, 1), `${fmt(x.mean, 1)} ± ${fmt(x.sePct, 1)}%`, `${fmt(size / MiB / (x.p50 / 1000))} MiB/s`];
  });
  const idleRows = Object.entries(idle).map(([m, v]) => (typeof v === 'string' ? [m, 'Errored', v] : [m, `${fmt(v.agent, 2)}%`, `${fmt(v.runner, 2)}%`]));
  const socketMode = Number.isNaN(sameCpu) ? 'unknown' : sameCpu > 0.5 ? 'both processes mostly on one vCPU' : 'processes mostly on different vCPUs';

  const md = [
    '## Channel (issue 3)',
    '',
    `Command: \`${PIN ? `BENCH_PIN=${PIN.join(',')} ` : ''}npm run bench:channel\` (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} vCPU, Node ${process.version}, CRC32C ${crc32cImplementation}, ring ${RING / MiB} MiB per direction). Two processes on one /dev/shm region; RTT samples: ${RTT_N} (ring polling and floor, interleaved in blocks of ${RTT_BLOCK} on the same two processes), 20000 (others).`,
    '',
    '### Round trip of a 64 B frame (µs)',
    '',
    table(['path', 'p50', 'p99', 'mean ± se', 'vs floor', 'vs socket'], rttRows),
    '',
    blocks.length > 0 ? blockSummary(blocks) : 'The floor and the polling ring did not run.',
    '',
    `Unix socket mode seen: ${socketMode} (its RTT is bimodal on this VM: ~11 µs sharing a vCPU, ~95 µs across vCPUs).${PEER_CPU !== undefined ? ` RTT and throughput ran with this process pinned to vCPU ${PIN?.[0]} and the peer to vCPU ${PEER_CPU} (\`BENCH_PIN=${PIN?.join(',')}\`).` : ''}`,
    '',
    'The blocking wait as shipped (futex or socket doorbell) checks the ring once per event-loop turn for 200 µs after the last frame before it arms its kick flag and sleeps, so back-to-back exchanges never sleep and an idle link costs no CPU (last table). The "always asleep" rows turn that off: every frame then pays a real wake-up on each side, which is what a request after a quiet spell costs (a futex wake reaches the event loop through a libuv worker thread: one more thread switch than a socket read).',
    '',
    '### Throughput of 64 KiB frames (MiB/s)',
    '',
    table(['path', 'p50', 'mean ± se', 'vs socket', 'of copy'], tpRows),
    '',
    '### Deploy: module transfer + sha256 check + compile on the runner (ms)',
    '',
    table(['module', 'p50', 'p99', 'mean ± se', 'effective'], depRows),
    '',
    '### Idle CPU of agent and runner (5 s window, after 1 s settle)',
    '',
    table(['notification', 'agent', 'runner'], idleRows),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (process.env.BENCH_WRITE !== '0' && !PARTIAL) process.stderr.write(`wrote ${writeSection('channel', md)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:channel failed: ${String(err)}\n`);
    process.exit(1);
  },
);
