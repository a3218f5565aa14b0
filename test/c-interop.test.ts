import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunnerLink } from '../agent/src/link/index.js';
import { Endpoint, attachRing, createRing, peerState, type RingLink } from '../runner-proto/src/channel/index.js';
import { AgentError } from '../runner-proto/src/errors/index.js';
import { FLAG_BODY_CRC, FLAG_JSON, FRAME_HEADER_SIZE, decodeFrame, encodeFrame, type Frame } from '../runner-proto/src/frame/index.js';
import { createLogger } from '../runner-proto/src/log/index.js';
import { MsgType, decodeJson, encodeJson, helloAckSchema, PROTOCOL_VERSION } from '../runner-proto/src/protocol/index.js';
import { CTRL_HEAD, CTRL_RESET_ACK, CTRL_RESET_REQ, CTRL_TAIL, RING_CTRL_OFFSETS, Side } from '../runner-proto/src/region/index.js';
import { crc32cJs } from '../runner-proto/src/crc/index.js';
import { z } from 'zod';
import {
  C_BUILD,
  buildC,
  FREESTANDING_FLAGS,
  LIB_SOURCES,
  cleanup,
  hasCommand,
  peerOnce,
  run,
  shmPath,
  startPeer,
} from './helpers/c-peer.js';

// The C reference (runner-proto/c/) against the TypeScript agent side: same region, same rings, same frames.

const logger = createLogger('c-interop', { level: 'silent' });

test.before(async () => {
  await buildC();
});

test.after.always(async () => {
  await cleanup();
});

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

// ---------------------------------------------------------------------------------------------------------------
// The freestanding contract

async function compilersToCheck(): Promise<string[]> {
  const ccs = ['cc'];
  if (await hasCommand('clang')) ccs.push('clang');
  return ccs;
}

test.serial('the C library compiles with -ffreestanding -nostdlib -fno-builtin -Werror and needs no libc symbol', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmring-c-'));
  try {
    for (const cc of await compilersToCheck()) {
      for (const opt of ['-O0', '-O2']) {
        for (const src of LIB_SOURCES) {
          const obj = path.join(out, `${cc}${opt}-${src}.o`);
          // Throws (failing the test) on any warning or error.
          await run(cc, [...FREESTANDING_FLAGS, opt, src, '-o', obj]);
          const { stdout } = await run('nm', ['-u', obj]);
          const undefinedSyms = stdout.split('\n').map((l) => l.trim().replace(/^U\s+/, '')).filter((s) => s !== '');
          const foreign = undefinedSyms.filter((s) => !s.startsWith('wr_'));
          t.deepEqual(foreign, [], `${cc} ${opt} ${src} references symbols outside the library`);
        }
      }
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  t.true(fs.existsSync(path.join(C_BUILD, 'libwasmring.a')));
});

test.serial('the library links into a -nostdlib executable whose self-test passes', async (t) => {
  const exe = path.join(C_BUILD, 'freestanding-check');
  t.true(fs.existsSync(exe), 'make lib links build/freestanding-check with -nostdlib');
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    await t.notThrowsAsync(run(exe, []), 'exit status 0 from the freestanding self-test');
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Frame vectors, both ways

interface CDecoded {
  ok: boolean;
  fault?: string;
  type?: number;
  flags?: number;
  length?: number;
  seq?: number;
  corr?: number;
  bodyCrc?: number;
  body?: string;
}

const VECTORS: Array<{ type: number; flags: number; seq: number; corr: number; body: Uint8Array }> = [
  { type: MsgType.ECHO, flags: FLAG_BODY_CRC | FLAG_JSON, seq: 7, corr: 42, body: new TextEncoder().encode('{"hello":"wasmring"}') },
  { type: MsgType.HELLO, flags: 0, seq: 0, corr: 0, body: new Uint8Array(0) },
  { type: MsgType.PING, flags: FLAG_BODY_CRC, seq: 1, corr: 2, body: new Uint8Array(0) },
  { type: MsgType.MODULE_CHUNK, flags: 0, seq: 0xffffffff, corr: 0xfffffffe, body: new Uint8Array([0xff]) },
  { type: MsgType.RESULT, flags: FLAG_BODY_CRC, seq: 123456, corr: 0x80000001, body: Uint8Array.from({ length: 63 }, (_, i) => i * 3) },
  { type: MsgType.ERROR, flags: FLAG_JSON, seq: 5, corr: 9, body: new Uint8Array(randomBytes(1000)) },
  { type: 0xff, flags: FLAG_BODY_CRC, seq: 0x01020304, corr: 0x0a0b0c0d, body: new Uint8Array(randomBytes(4096)) },
];

test.serial('frame vectors: frames encoded by C decode identically in TypeScript, byte for byte', async (t) => {
  const sample = (await peerOnce(['--encode-vector'])).trim();
  // The documented sample: ECHO, flags 3, seq 7, corr 42, body {"hello":"wasmring"}.
  t.is(sample, hex(encodeFrame({ ...VECTORS[0]! })));
  for (const v of VECTORS) {
    const cHex = (await peerOnce(['--encode-vector', '--type', String(v.type), '--flags', String(v.flags), '--seq', String(v.seq), '--corr', String(v.corr), '--body-hex', hex(v.body)])).trim();
    t.is(cHex, hex(encodeFrame(v)), `type ${v.type} body ${v.body.length}`);
    const decoded = decodeFrame(Buffer.from(cHex, 'hex'), 1 << 20);
    if ('code' in decoded) {
      t.fail(`TS refused the C frame: ${decoded.code}`);
      continue;
    }
    t.like(decoded, { type: v.type, flags: v.flags, seq: v.seq, corr: v.corr });
    t.true(same(decoded.body, v.body));
  }
});

test.serial('frame vectors: frames encoded by TypeScript decode identically in C, faults agree', async (t) => {
  for (const v of VECTORS) {
    const bytes = encodeFrame(v);
    const c = JSON.parse(await peerOnce(['--decode-vector', hex(bytes)])) as CDecoded;
    const want = v.flags & FLAG_BODY_CRC ? crc32cJs(v.body) : 0;
    t.deepEqual(c, { ok: true, type: v.type, flags: v.flags, length: v.body.length, seq: v.seq, corr: v.corr, bodyCrc: want, body: hex(v.body) });
  }
  // Corruptions: C and TS must refuse each one with the same fault.
  const base = encodeFrame({ type: MsgType.ECHO, flags: FLAG_BODY_CRC, seq: 1, corr: 2, body: new TextEncoder().encode('corrupt me') });
  const withHeaderCrc = (b: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(b);
    new DataView(out.buffer).setUint32(20, crc32cJs(out.subarray(0, 20)), true);
    return out;
  };
  const flip = (i: number, mask = 0x01): Uint8Array => {
    const out = Uint8Array.from(base);
    out[i]! ^= mask;
    return out;
  };
  const cases: Array<{ name: string; bytes: Uint8Array; maxBody?: number }> = [
    { name: 'magic', bytes: flip(0) },
    { name: 'header byte', bytes: flip(9) },
    { name: 'header CRC', bytes: flip(22) },
    { name: 'body byte', bytes: flip(FRAME_HEADER_SIZE + 3) },
    { name: 'unknown flag', bytes: withHeaderCrc(Object.assign(Uint8Array.from(base), { 3: 0x81 })) },
    { name: 'truncated header', bytes: base.subarray(0, 23) },
    { name: 'truncated body', bytes: base.subarray(0, base.length - 1) },
    { name: 'too long', bytes: base, maxBody: 4 },
    { name: 'length past the buffer', bytes: withHeaderCrc(Object.assign(Uint8Array.from(base), { 5: 0x10 })) },
  ];
  for (const c of cases) {
    const maxBody = c.maxBody ?? 1 << 20;
    const ts = decodeFrame(c.bytes, maxBody);
    const cOut = JSON.parse(await peerOnce(['--decode-vector', hex(c.bytes), '--max-body', String(maxBody)])) as CDecoded;
    t.true('code' in ts, `${c.name}: TS accepted it`);
    t.deepEqual(cOut, { ok: false, fault: (ts as { code: string }).code }, c.name);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Traffic helpers

const SIZES = [0, 1, 63, 4096];

async function echo(t: ExecutionContext, ep: Endpoint, body: Uint8Array, flags: number): Promise<void> {
  const r: Frame = await ep.request(MsgType.ECHO, body, { flags, timeoutMs: 15_000 });
  t.is(r.type, MsgType.RESULT);
  t.is(r.flags, flags, `flags echoed for ${body.length} bytes`);
  if (!same(r.body, body)) t.fail(`echo of ${body.length} bytes (flags ${flags}) came back different`);
}

/** The fixed sizes with every flag combination, then a long burst with many frames in flight. */
async function echoAll(t: ExecutionContext, ep: Endpoint, maxBody: number, capacity: number): Promise<void> {
  for (const size of [...SIZES, maxBody - 1, maxBody]) {
    for (const flags of [0, FLAG_BODY_CRC, FLAG_BODY_CRC | FLAG_JSON]) {
      await echo(t, ep, new Uint8Array(randomBytes(size)), flags);
    }
  }
  // A burst of random sizes, 16 in flight: many times the ring's capacity in each direction.
  let bytes = 0;
  let next = 0;
  const total = 600;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const size = i % 10 === 0 ? maxBody : i % 3 === 0 ? SIZES[i % SIZES.length]! : Math.floor(Math.random() * Math.min(maxBody, 20_000));
      bytes += size;
      await echo(t, ep, new Uint8Array(randomBytes(size)), i % 2 === 0 ? FLAG_BODY_CRC : 0);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  t.true(bytes > 8 * capacity, `burst moved ${bytes} bytes through a ${capacity}-byte ring each way`);
}

const CHUNK = 64 * 1024;
const okSchema = z.record(z.string(), z.unknown());

/** MODULE_BEGIN / CHUNK / END over a bare Endpoint, exactly as RunnerLink.sendModule does it. */
async function sendModule(ep: Endpoint, digest: string, bytes: Uint8Array): Promise<Record<string, unknown>> {
  const corr = ep.allocCorr();
  const begin = decodeJson(MsgType.RESULT, (await ep.request(MsgType.MODULE_BEGIN, encodeJson({ digest, size: bytes.length, chunkSize: CHUNK }), { corr })).body, okSchema);
  if (begin.accepted !== true) throw new Error('MODULE_BEGIN not accepted');
  const chunk = Math.min(CHUNK, ep.transport.maxBody);
  for (let off = 0; off < bytes.length; off += chunk) {
    await ep.send(MsgType.MODULE_CHUNK, corr, bytes.subarray(off, Math.min(off + chunk, bytes.length)), 0);
  }
  const end = await ep.request(MsgType.MODULE_END, encodeJson({ digest }), { corr, timeoutMs: 60_000 });
  return decodeJson(MsgType.RESULT, end.body, okSchema);
}

async function have(ep: Endpoint, digest: string): Promise<boolean> {
  const r = await ep.requestJson(MsgType.MODULE_HAVE, { digest }, z.object({ have: z.boolean() }));
  return r.have;
}

async function hello(ep: Endpoint): Promise<z.infer<typeof helloAckSchema>> {
  return ep.requestJson(
    MsgType.HELLO,
    { versions: [PROTOCOL_VERSION], role: 'agent', epoch: 1, capabilities: ['module-transfer'], maxBody: ep.transport.maxBody },
    helloAckSchema,
  );
}

async function heartbeatMoves(link: RingLink, side: Side): Promise<boolean> {
  const a = peerState(link.region, side).heartbeat;
  await new Promise((r) => setTimeout(r, 350));
  return peerState(link.region, side).heartbeat !== a;
}

/** Polls `cond` every 10 ms for up to `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

function ctrlWord(link: RingLink, ring: 0 | 1, field: number): number {
  return Atomics.load(link.region.words, (RING_CTRL_OFFSETS[ring] + field) >> 2) >>> 0;
}

/**
 * Arranges for the next record written into `ring` by this process's producer to be corrupted: wraps the
 * producer's writeHeader by flipping the correlation byte of the record starting at the current tail right after
 * it is written (before publish). Returns nothing; one shot.
 */
function scribbleNextRecord(link: RingLink, ring: 0 | 1): void {
  const tx = link.transport.tx;
  const data = link.region.ring(ring).data;
  const mask = data.length - 1;
  const original = tx.publish.bind(tx);
  tx.publish = () => {
    tx.publish = original;
    // The record just written ends at the private tail; it is the last one, of 40 bytes (24 + 16).
    const at = (tx.published - 40) & mask;
    data[at + 12]! ^= 0x55; // its correlation id: the header CRC no longer matches
    return original();
  };
}

/**
 * Scribbles random bytes over the whole data area of `ring` every millisecond while `traffic` runs: published
 * frames the consumer has not read yet are destroyed, wherever they are. Returns how many requests failed and
 * how many were answered during the storm.
 */
async function scribbleStorm(link: RingLink, ring: 0 | 1, ms: number, traffic: () => Promise<void>): Promise<{ ok: number; failed: number }> {
  const data = link.region.ring(ring).data;
  const timer = setInterval(() => randomFillSync(data), 1);
  const end = performance.now() + ms;
  let ok = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      try {
        await traffic();
        ok++;
      } catch {
        failed++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    clearInterval(timer);
  }
  return { ok, failed };
}

/** After corruption: echoes succeed again (the first ones may still be lost to a reset in progress). */
async function recovers(t: ExecutionContext, ep: Endpoint, diag?: () => string): Promise<void> {
  let answered = false;
  for (let i = 0; i < 20 && !answered; i++) {
    answered = await ep.request(MsgType.ECHO, new Uint8Array(8), { flags: FLAG_BODY_CRC, timeoutMs: 1000 }).then(() => true, () => false);
  }
  if (!answered && diag) t.log(diag());
  t.true(answered, 'an echo is answered after the scribbling stopped');
  for (let i = 0; i < 50; i++) await echo(t, ep, new Uint8Array(randomBytes(i * 97)), i % 2 === 0 ? FLAG_BODY_CRC : 0);
}

function tamper(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[Math.floor(out.length / 2)]! ^= 0x20;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// C peer creates the region (the runner's part); the TypeScript agent attaches

test.serial('C peer as the runner: RunnerLink says HELLO and moves a chunked module the C side verifies', async (t) => {
  const region = shmPath('link');
  const peer = await startPeer(['--region', region, '--ring-size', String(256 * 1024)]);
  const link = new RunnerLink({ kind: 'ring', path: region }, logger);
  try {
    await link.connected(10_000);
    const st = link.status();
    t.true(st.connected);
    t.is(st.protocolVersion, PROTOCOL_VERSION);
    t.deepEqual(st.engines, ['c-peer']);
    t.true(typeof st.runnerEpoch === 'number' && st.runnerEpoch > 0);

    const module = new Uint8Array(randomBytes(5 * 1024 * 1024 + 12_345));
    const digest = sha256(module);
    t.like(await link.ensureModule(digest, async () => module), { sent: true });
    // Now the C side holds it: MODULE_HAVE answers true and no bytes move.
    t.like(await link.ensureModule(digest, async () => { throw new Error('must not load'); }), { sent: false });

    // Bytes that do not hash to the announced digest are refused by the C side's sha256.
    const other = new Uint8Array(randomBytes(3 * 1024 * 1024 + 7));
    const otherDigest = sha256(other);
    const err = await t.throwsAsync(link.ensureModule(otherDigest, async () => tamper(other)));
    t.true(err instanceof AgentError);
    t.is((err as AgentError).code, 'AGT_ERR_DIGEST_MISMATCH');
    t.regex(err!.message, /hash to sha256:[0-9a-f]{64}, announced sha256:/);
    // ... and it does not count as held; the honest bytes then go through.
    t.like(await link.ensureModule(otherDigest, async () => other), { sent: true });

    t.true((await link.ping()) >= 0);
  } finally {
    await link.close();
    const exit = await peer.stop();
    t.deepEqual(exit, { code: 0, signal: null }, peer.stderr());
  }
});

test.serial('C peer as the runner: echo of many sizes, with and without body CRC, wrapping the ring', async (t) => {
  const region = shmPath('echo');
  const ringSize = 64 * 1024;
  const peer = await startPeer(['--region', region, '--ring-size', String(ringSize)]);
  const link = await attachRing({ path: region, timeoutMs: 10_000 });
  const ep = new Endpoint({ transport: link.transport, role: 'agent', logger });
  ep.start();
  try {
    const ack = await hello(ep);
    t.deepEqual(ack.engines, ['c-peer']);
    t.is(ack.version, PROTOCOL_VERSION);
    // The C side's liveness words, exactly where the TypeScript side looks for them.
    const runner = peerState(link.region, Side.Runner);
    t.true(runner.attached);
    t.is(runner.epoch, ack.epoch);
    t.true(await heartbeatMoves(link, Side.Runner), 'C heartbeat moves every 100 ms');

    t.is(link.transport.maxBody, ringSize / 2 - FRAME_HEADER_SIZE);
    await echoAll(t, ep, link.transport.maxBody, ringSize);
    t.true(link.transport.tx.published > 8 * ringSize);

    // A frame scribbled on after it was written is refused by the C consumer, which requests a ring reset (the
    // TypeScript producer carries it out) and keeps serving.
    await new Promise((r) => setTimeout(r, 50));
    const tx = link.transport.tx;
    const resets = tx.resets;
    scribbleNextRecord(link, 0);
    t.true(tx.tryWrite({ type: MsgType.ECHO, flags: FLAG_BODY_CRC, corr: 999_998, body: new Uint8Array(16) }));
    tx.publish();
    t.true(await until(() => tx.resets > resets), `TS producer carried out the reset; peer: ${peer.stderr()}`);
    t.regex(peer.stderr(), /ring fault header-crc: reset requested/);
    await echo(t, ep, new Uint8Array(randomBytes(1000)), FLAG_BODY_CRC);

    // SIGTERM: clean exit, and the side is marked absent in the region.
    const exit = await peer.stop();
    t.deepEqual(exit, { code: 0, signal: null }, peer.stderr());
    t.false(peerState(link.region, Side.Runner).attached);
  } finally {
    await ep.close();
    await link.close();
    await peer.stop();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The reverse: TypeScript creates the region, the C peer attaches and serves

test.serial('TS creates the region, the C peer attaches (--attach) and serves HELLO, echo and modules', async (t) => {
  const region = shmPath('attach');
  const ringSize = 64 * 1024;
  const link = createRing({ path: region, ringSize });
  const peer = await startPeer(['--region', region, '--attach', '--attach-timeout-ms', '5000']);
  const ep = new Endpoint({ transport: link.transport, role: 'runner', logger });
  ep.start();
  try {
    const ack = await hello(ep);
    t.deepEqual(ack.engines, ['c-peer']);
    const agentSide = peerState(link.region, Side.Agent);
    t.true(agentSide.attached);
    t.is(agentSide.epoch, ack.epoch);
    t.true(await heartbeatMoves(link, Side.Agent));

    await echoAll(t, ep, link.transport.maxBody, ringSize);

    const module = new Uint8Array(randomBytes(4 * 1024 * 1024 + 3));
    const digest = sha256(module);
    t.false(await have(ep, digest));
    t.deepEqual(await sendModule(ep, digest, module), { digest, kind: 'command' });
    t.true(await have(ep, digest));

    const other = new Uint8Array(randomBytes(2 * 1024 * 1024 + 1));
    const otherDigest = sha256(other);
    const err = await t.throwsAsync(sendModule(ep, otherDigest, tamper(other)));
    t.is((err as AgentError).code, 'AGT_ERR_DIGEST_MISMATCH');
    t.false(await have(ep, otherDigest));

    // Bounds: a chunk past the announced size and a module over the peer's limit are refused.
    const tooBig = await t.throwsAsync(ep.request(MsgType.MODULE_BEGIN, encodeJson({ digest: otherDigest, size: 2 ** 40, chunkSize: CHUNK })));
    t.is((tooBig as AgentError).code, 'AGT_ERR_TOO_LARGE');
    const bad = await t.throwsAsync(ep.request(MsgType.MODULE_HAVE, encodeJson({ digest: 'sha256:XYZ' })));
    t.is((bad as AgentError).code, 'AGT_ERR_PROTOCOL');

    const exit = await peer.stop();
    t.deepEqual(exit, { code: 0, signal: null }, peer.stderr());
    t.false(peerState(link.region, Side.Agent).attached);
  } finally {
    await ep.close();
    await link.close();
    await peer.stop();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Corruption of the live region: the ring reset handshake between the two implementations

test.serial('reset handshake, C consumer: scribbling on the agent->runner ring makes the C side ask, TS carries it out', async (t) => {
  const region = shmPath('reset-c-consumer');
  const ringSize = 64 * 1024;
  const peer = await startPeer(['--region', region, '--ring-size', String(ringSize)]);
  const link = await attachRing({ path: region, timeoutMs: 10_000 });
  const ep = new Endpoint({ transport: link.transport, role: 'agent', logger });
  ep.start();
  try {
    await hello(ep);
    await echo(t, ep, new Uint8Array(randomBytes(100)), FLAG_BODY_CRC);
    const tx = link.transport.tx;

    // One corrupted record, deterministically: the C consumer sees header-crc, sets reset-req = reset-ack + 1 and
    // rings our doorbell; our receive loop carries the reset out (tail = 0, reset-ack = reset-req); C sets head = 0.
    scribbleNextRecord(link, 0);
    const lost = ep.request(MsgType.ECHO, new Uint8Array(16), { flags: FLAG_BODY_CRC, timeoutMs: 1000 });
    const err = await t.throwsAsync(lost);
    t.is((err as AgentError).code, 'AGT_ERR_TIMEOUT', 'the corrupted request is lost, and times out');
    t.true(await until(() => tx.resets >= 1), `TS producer carried out the reset; peer: ${peer.stderr()}`);
    t.regex(peer.stderr(), /ring fault header-crc: reset requested \(request 1\)/);
    t.true(await until(() => ctrlWord(link, 0, CTRL_HEAD) < 4096), 'the C consumer moved head back to the start');
    t.is(ctrlWord(link, 0, CTRL_RESET_REQ), 1);
    t.is(ctrlWord(link, 0, CTRL_RESET_ACK), 1);
    await recovers(t, ep);
    t.regex(peer.stderr(), /ring reset complete, reading from 0/);

    // A storm: random bytes over the whole agent->runner data area every millisecond while 8 requesters run.
    const before = tx.resets;
    const storm = await scribbleStorm(link, 0, 500, async () => {
      await ep.request(MsgType.ECHO, new Uint8Array(randomBytes(2000)), { flags: FLAG_BODY_CRC, timeoutMs: 300 });
    });
    t.log(`storm: ${storm.ok} answered, ${storm.failed} lost, ${tx.resets - before} resets`);
    await recovers(t, ep, () => `ring0 ${JSON.stringify([CTRL_TAIL, CTRL_RESET_ACK, CTRL_HEAD, CTRL_RESET_REQ, 0x80, 0xc0].map((f) => ctrlWord(link, 0, f)))} ring1 ${JSON.stringify([CTRL_TAIL, CTRL_RESET_ACK, CTRL_HEAD, CTRL_RESET_REQ, 0x80, 0xc0].map((f) => ctrlWord(link, 1, f)))} txTail ${tx.published} peer: ${peer.stderr().slice(-3000)}`);
    t.true(peerState(link.region, Side.Runner).attached, 'the C peer never restarted');
    t.is(ctrlWord(link, 0, CTRL_RESET_ACK), ctrlWord(link, 0, CTRL_RESET_REQ), 'no reset left half done');

    const exit = await peer.stop();
    t.deepEqual(exit, { code: 0, signal: null }, peer.stderr());
  } finally {
    await ep.close();
    await link.close();
    await peer.stop();
  }
});

test.serial('reset handshake, C producer: scribbling on the agent->runner ring makes the TS side ask, C carries it out', async (t) => {
  // TS creates the region and takes the runner's side; the C peer attaches as the agent, so its answers travel
  // on the agent->runner ring (ring 0) that the TypeScript side consumes.
  const region = shmPath('reset-c-producer');
  const ringSize = 64 * 1024;
  const link = createRing({ path: region, ringSize });
  const peer = await startPeer(['--region', region, '--attach', '--attach-timeout-ms', '5000']);
  const ep = new Endpoint({ transport: link.transport, role: 'runner', logger });
  ep.start();
  try {
    await hello(ep);
    await echo(t, ep, new Uint8Array(randomBytes(100)), FLAG_BODY_CRC);
    const rx = link.transport.rx;

    // Deterministically: send a request, wait (synchronously, so our receive loop cannot run) until the C peer
    // has published its answer, corrupt that answer's header, then let the receive loop find it.
    const tailIdx = (RING_CTRL_OFFSETS[0] + CTRL_TAIL) >> 2;
    const before = Atomics.load(link.region.words, tailIdx) >>> 0;
    const lost = ep.request(MsgType.ECHO, new Uint8Array(16), { flags: FLAG_BODY_CRC, timeoutMs: 1000 });
    const deadline = performance.now() + 5000;
    while ((Atomics.load(link.region.words, tailIdx) >>> 0) === before && performance.now() < deadline) {
      // spin: the C peer answers within its polling interval
    }
    const data = link.region.ring(0).data;
    let at = before & (ringSize - 1);
    if (new DataView(data.buffer, data.byteOffset).getUint32(at, true) === 0xffffffff) at = 0; // the answer wrapped
    data[at + 12]! ^= 0x55;
    const err = await t.throwsAsync(lost);
    t.is((err as AgentError).code, 'AGT_ERR_TIMEOUT', 'the corrupted answer is refused, the request times out');
    t.true(link.transport.faults >= 1, 'the TS consumer refused the frame');
    t.true(await until(() => peer.stderr().includes('ring reset carried out')), `C producer carried out the reset; peer: ${peer.stderr()}`);
    t.true(await until(() => !rx.resetInProgress()), 'the TS consumer completed the reset');
    t.is(ctrlWord(link, 0, CTRL_RESET_REQ), 1);
    t.is(ctrlWord(link, 0, CTRL_RESET_ACK), 1);
    await recovers(t, ep);

    // A storm over the C side's answers.
    const faults = link.transport.faults;
    const storm = await scribbleStorm(link, 0, 500, async () => {
      await ep.request(MsgType.ECHO, new Uint8Array(randomBytes(2000)), { flags: FLAG_BODY_CRC, timeoutMs: 300 });
    });
    t.log(`storm: ${storm.ok} answered, ${storm.failed} lost, ${link.transport.faults - faults} faults seen by TS`);
    await recovers(t, ep);
    t.true(peerState(link.region, Side.Agent).attached, 'the C peer never restarted');
    t.true(await until(() => ctrlWord(link, 0, CTRL_RESET_ACK) === ctrlWord(link, 0, CTRL_RESET_REQ)), 'no reset left half done');

    const exit = await peer.stop();
    t.deepEqual(exit, { code: 0, signal: null }, peer.stderr());
  } finally {
    await ep.close();
    await link.close();
    await peer.stop();
  }
});
