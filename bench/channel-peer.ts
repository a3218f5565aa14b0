/**
 * The far side of bench/channel.ts, a separate process. Modes:
 *   ring-echo REGION MODE [FLOOR]
 *                           RingTransport (runner side) answering ECHO frames with the same body, in the
 *                           transport as the runner does (MODE: polling, futex, socket:PATH; -cold after
 *                           futex/socket: no hot phase).
 *                           With FLOOR (a 4 KiB shared file), a CALL frame whose corr is FLOOR_BLOCK and whose
 *                           body is two u32s [from, n] is not answered: its handler serves n bare hand-offs on
 *                           FLOOR instead, so the floor and the ring are measured on the same two processes.
 *   ring-sink REGION MODE   counts bytes of incoming frames; answers the END frame with the count
 *   socket-echo PATH        Unix socket echo
 *   socket-sink PATH TOTAL  counts bytes; writes one byte back when TOTAL have arrived
 */
import fs from 'node:fs';
import net from 'node:net';
import { FutexNotifier, PollingNotifier, SocketNotifier, type Notifier } from '../runner-proto/src/notify/index.js';
import { MsgType } from '../runner-proto/src/protocol/index.js';
import { Region, Side } from '../runner-proto/src/region/index.js';
import { mapFile } from '../runner-proto/src/shm/index.js';
import { RingTransport } from '../runner-proto/src/transport/index.js';
import { FLOOR_BLOCK, FLOOR_BYTES, serveFloor } from './lib/floor.js';

const [mode, target, arg, floorFile] = process.argv.slice(2);

// A `-cold` suffix on the mode (futex-cold, socket-cold:PATH) turns the transport's hot phase off: every
// exchange then pays a real sleep and wake-up.
const cold = arg?.includes('-cold') ?? false;
const spec = arg?.replace('-cold', '');

function notifier(spec: string | undefined): Notifier {
  if (spec?.startsWith('socket:')) {
    // socket:PATH -- kicks travel as bytes over a Unix socket that the bench process listens on.
    const n = new SocketNotifier();
    const sock = net.connect(spec.slice('socket:'.length));
    sock.setNoDelay(true);
    n.attach(sock);
    return n;
  }
  if (spec === 'futex') return new FutexNotifier();
  return new PollingNotifier();
}

function ready(): void {
  process.stdout.write('READY\n');
}

if (mode === 'ring-echo' || mode === 'ring-sink') {
  const m = mapFile(target!, fs.statSync(target!).size);
  const region = Region.attach(m.buffer);
  const t = new RingTransport({ region, side: Side.Runner, notifier: notifier(spec), baseAddress: m.address, hotUs: cold ? 0 : undefined });
  let bytes = 0;
  const floor = floorFile === undefined ? undefined : new Int32Array(mapFile(floorFile, FLOOR_BYTES).buffer);
  // As the runner does: the sink consumes module chunks in place, and the echo hands bodies straight to send().
  t.borrow = mode === 'ring-sink' ? (type) => type === MsgType.MODULE_CHUNK : (type) => type === MsgType.ECHO;
  if (mode === 'ring-echo') t.echo = { request: MsgType.ECHO, answer: MsgType.RESULT };
  t.start({
    frame: (f) => {
      if (floor !== undefined && f.type === MsgType.CALL && f.corr === FLOOR_BLOCK) {
        const v = new DataView(f.body.buffer, f.body.byteOffset, f.body.byteLength);
        serveFloor(floor, v.getUint32(0, true), v.getUint32(4, true), 10_000);
      } else if (mode === 'ring-echo') void t.send({ type: MsgType.RESULT, flags: f.flags, corr: f.corr, body: f.body });
      else if (f.type === MsgType.MODULE_END) {
        // Reset before answering: the next pass's chunks can be in the ring, and counted, before a `.then` runs.
        const n = bytes;
        bytes = 0;
        void t.send({ type: MsgType.RESULT, flags: 0, corr: f.corr, body: Buffer.from(String(n)) });
      }
      else bytes += f.body.length;
    },
    fault: (f) => process.stderr.write(`fault ${JSON.stringify(f)}\n`),
    closed: () => undefined,
  });
  process.on('SIGTERM', () => void t.close().then(() => process.exit(0)));
  ready();
} else if (mode === 'socket-echo' || mode === 'socket-sink') {
  fs.rmSync(target!, { force: true });
  const total = Number(arg ?? 0);
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    let got = 0;
    sock.on('data', (c: Buffer) => {
      if (mode === 'socket-echo') sock.write(c);
      else {
        got += c.length;
        if (got >= total) {
          got -= total;
          sock.write(Buffer.from([1]));
        }
      }
    });
  });
  server.listen(target!, ready);
  process.on('SIGTERM', () => process.exit(0));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
