import type { Duplex } from 'node:stream';
import { AgentError } from '../errors/index.js';
import { FRAME_HEADER_SIZE, checkBody, encodeFrame, isFault, readHeader } from '../frame/index.js';
import type { FrameToSend } from '../ring/index.js';
import type { FrameTransport, TransportHandlers } from './types.js';

export const STREAM_MAX_BODY = 256 * 1024;

/**
 * The same frames over a byte stream (a Unix socket, a virtio-serial port). Frames are self-delimiting through
 * the header's length; the receive buffer never holds more than one maximal frame beyond what was parsed.
 * On a corrupted header the stream cannot be trusted to realign, so the transport reports the fault and scans
 * forward for the next valid header.
 */
export class StreamTransport implements FrameTransport {
  readonly kind = 'stream' as const;
  readonly maxBody: number;
  private readonly stream: Duplex;
  private handlers: TransportHandlers | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private seq = 0;
  private closed = false;
  private resyncing = false;
  framesIn = 0;
  framesOut = 0;
  faults = 0;

  constructor(stream: Duplex, maxBody = STREAM_MAX_BODY) {
    this.stream = stream;
    this.maxBody = maxBody;
  }

  start(handlers: TransportHandlers): void {
    this.handlers = handlers;
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('error', (err: Error) => handlers.fault({ code: 'stream-error', message: err.message }));
    this.stream.on('close', () => {
      this.closed = true;
      handlers.closed();
    });
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const h = this.handlers!;
    let off = 0;
    for (;;) {
      const avail = this.pending.length - off;
      if (avail < FRAME_HEADER_SIZE) break;
      const view = new DataView(this.pending.buffer, this.pending.byteOffset + off, avail);
      const bytes = new Uint8Array(this.pending.buffer, this.pending.byteOffset + off, avail);
      const hdr = readHeader(view, bytes, 0, this.maxBody);
      if (isFault(hdr)) {
        // Scan forward byte by byte for the next header whose CRC holds; report the loss once, not per byte.
        if (!this.resyncing) {
          this.faults++;
          this.resyncing = true;
          h.fault(hdr);
        }
        off += 1;
        continue;
      }
      this.resyncing = false;
      const total = FRAME_HEADER_SIZE + hdr.length;
      if (avail < total) break;
      const body = Buffer.from(bytes.subarray(FRAME_HEADER_SIZE, total));
      off += total;
      const fault = checkBody(hdr, body);
      if (fault) {
        this.faults++;
        h.fault(fault);
        continue;
      }
      this.framesIn++;
      h.frame({ type: hdr.type, flags: hdr.flags, seq: hdr.seq, corr: hdr.corr, body });
    }
    this.pending = off >= this.pending.length ? Buffer.alloc(0) : this.pending.subarray(off);
  }

  async send(f: FrameToSend, timeoutMs = 10_000): Promise<void> {
    if (this.closed) throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'stream transport closed');
    if (f.body.length > this.maxBody) {
      throw new AgentError('AGT_ERR_CHANNEL_FRAME', `frame body of ${f.body.length} bytes exceeds the stream maximum ${this.maxBody}`);
    }
    const bytes = encodeFrame({ ...f, seq: this.seq });
    this.seq = (this.seq + 1) >>> 0;
    this.framesOut++;
    if (this.stream.write(bytes)) return;
    // Back-pressure: wait for the socket buffer to drain, bounded.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new AgentError('AGT_ERR_TIMEOUT', `stream did not drain within ${timeoutMs} ms`, { timeoutMs }));
      }, timeoutMs);
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'stream closed while sending'));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.stream.off('drain', onDrain);
        this.stream.off('close', onClose);
      };
      this.stream.on('drain', onDrain);
      this.stream.on('close', onClose);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stream.end();
    this.stream.destroy();
  }
}
