import fs from 'node:fs';
import { Duplex } from 'node:stream';
import { AgentError } from '../errors/index.js';
import { StreamTransport } from '../transport/index.js';

const READ_CHUNK = 64 * 1024;

/**
 * A character device (a virtio-serial port such as /dev/vport0p1 in the guest) as a Duplex stream, for the
 * stream transport. Node has no stream for a char device that is both read and written through one fd, so
 * this one drives fs.read/fs.write on the libuv threadpool: a read blocks in the kernel until bytes arrive,
 * which is exactly the wake-up the port gives. A read of 0 bytes is the port's way of saying the host side is
 * not connected: the stream ends, and the link's reconnect logic reopens the device.
 */
export class CharDeviceStream extends Duplex {
  private readonly fd: number;
  private reading = false;
  private closeWhenIdle: ((err: Error | null) => void) | undefined;
  private fdClosed = false;

  constructor(fd: number) {
    super({ allowHalfOpen: false });
    this.fd = fd;
  }

  override _read(): void {
    if (this.reading || this.fdClosed || this.destroyed) return;
    this.reading = true;
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    fs.read(this.fd, buf, 0, READ_CHUNK, null, (err, n) => {
      this.reading = false;
      if (this.closeWhenIdle) {
        // Destroyed while the read was in flight: whatever it brought belongs to nobody now.
        const done = this.closeWhenIdle;
        this.closeWhenIdle = undefined;
        this.closeFd(done);
        return;
      }
      if (err) {
        if (err.code === 'EAGAIN' || err.code === 'EINTR') {
          setTimeout(() => this._read(), 5);
          return;
        }
        this.destroy(err);
        return;
      }
      if (n === 0) {
        this.push(null);
        return;
      }
      if (this.push(buf.subarray(0, n))) this._read();
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const writeFrom = (off: number): void => {
      fs.write(this.fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN' || err.code === 'EINTR') {
            setTimeout(() => writeFrom(off), 5);
            return;
          }
          callback(err);
          return;
        }
        if (off + n < chunk.length) writeFrom(off + n);
        else callback();
      });
    };
    writeFrom(0);
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    if (this.reading) {
      this.closeWhenIdle = () => undefined;
      // The fd stays open until the blocked read returns (closing it under a pending read could let that read
      // steal bytes from a later open of the same device); the stream is already gone for its users.
      callback(err);
      return;
    }
    this.closeFd(() => callback(err));
  }

  private closeFd(done: (err: Error | null) => void): void {
    if (this.fdClosed) {
      done(null);
      return;
    }
    this.fdClosed = true;
    fs.close(this.fd, () => done(null));
  }
}

/**
 * Stream transport over a serial character device: opens `path` read-write (retrying while it does not exist
 * yet, bounded by timeoutMs) and frames over it exactly as over a Unix socket. The runner's end is the Unix
 * socket that QEMU's `-chardev socket` connects to.
 */
export async function openSerial(path: string, timeoutMs = 10_000): Promise<StreamTransport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = await new Promise<number>((resolve, reject) => {
        fs.open(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY, (err, fd) => (err ? reject(err) : resolve(fd)));
      });
      return new StreamTransport(new CharDeviceStream(fd));
    } catch (err) {
      if (Date.now() > deadline) {
        const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        throw new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', `cannot open serial port ${path}: ${why}`, { path });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
