/**
 * The far side of bench/channel.ts, a separate process. Modes:
 *   floor REGION            spin on word 0, answer on word 16 (the bare hand-off floor)
 *   ring-echo REGION MODE   RingTransport (runner side) answering every frame with the same body
 *                           (MODE: polling, futex, socket:PATH; -cold after futex/socket: no hot phase)
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

const [mode, target, arg] = process.argv.slice(2);

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

if (mode === 'floor') {
  const m = mapFile(target!, 4096);
  const w = new Int32Array(m.buffer);
  ready();
  let last = Atomics.load(w, 0);
  for (;;) {
    const v = Atomics.load(w, 0);
    if (v === last) continue;
    if (v === -1) break;
    Atomics.store(w, 16, v);
    last = v;
  }
  process.exit(0);
} else if (mode === 'ring-echo' || mode === 'ring-sink') {
  const m = mapFile(target!, fs.statSync(target!).size);
  const region = Region.attach(m.buffer);
  const t = new RingTransport({ region, side: Side.Runner, notifier: notifier(spec), baseAddress: m.address, hotUs: cold ? 0 : undefined });
  let bytes = 0;
  // As the runner does for module chunks: the sink consumes bodies in place.
  if (mode === 'ring-sink') t.borrow = (type) => type === MsgType.MODULE_CHUNK;
  t.start({
    frame: (f) => {
      if (mode === 'ring-echo') void t.send({ type: MsgType.RESULT, flags: f.flags, corr: f.corr, body: f.body });
      else if (f.type === MsgType.MODULE_END) void t.send({ type: MsgType.RESULT, flags: 0, corr: f.corr, body: Buffer.from(String(bytes)) }).then(() => (bytes = 0));
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
