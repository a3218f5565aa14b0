import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32c } from '../../../runner-proto/src/crc/index.js';
import { DSYNC, fileOpsFor, type FileOps } from '../store/file-ops.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * A small record kept durable with one synchronous data write per change: the file holds two fixed-size slots,
 * each a complete copy (header + payload) stamped with a sequence number and a CRC32C. A write goes to the slot
 * that does NOT hold the newest durable copy, in place, through an O_DSYNC descriptor; a crash mid-write can only
 * damage that slot, and recovery takes the valid slot with the highest sequence number.
 *
 * Why not tmp + fsync + rename + directory fsync: on ext4 that is two journal commits (the new inode, then the
 * rename) per change. Overwriting blocks that are already allocated and written changes no metadata a reader
 * needs, so O_DSYNC completes with one data write and one device flush (fdatasync semantics; mtime may lag).
 * The file is created whole (every byte written, so no block is sparse or unwritten, which would turn the
 * first overwrite back into a metadata change) by the rename path, which is also how it grows.
 *
 * Slot layout (slot i at offset i * slotBytes, slotBytes = file size / 2, a multiple of 4096): a 64-byte ASCII
 * header `WBSTATE1 seq=<16 hex> len=<8 hex> crc=<8 hex>` padded with spaces and ending in '\n', then `len`
 * payload bytes. The CRC covers the header's text up to `crc=` and the payload. ASCII, so `head -c 2000` on
 * the file shows which copy is which and the JSON in it.
 */
export const SLOT_MAGIC = 'WBSTATE1';
export const SLOT_HEADER_BYTES = 64;
const MIN_SLOT_BYTES = 16 * 1024;
const PAGE = 4096;
const HEADER_RE = /^WBSTATE1 seq=([0-9a-f]{16}) len=([0-9a-f]{8}) crc=([0-9a-f]{8}) *\n$/;


export interface SlotCopy {
  readonly slot: 0 | 1;
  readonly seq: number;
  readonly payload: Buffer;
}

/** What recovery found in each slot, for the error that names a file with no intact copy. */
export interface SlotScan {
  readonly newest: SlotCopy | undefined;
  /** Per slot: undefined when it holds a valid copy, else why not ('empty' for a never-written slot). */
  readonly problems: readonly [string | undefined, string | undefined];
  readonly slotBytes: number;
}

function prefixOf(seq: number, len: number): string {
  return `${SLOT_MAGIC} seq=${seq.toString(16).padStart(16, '0')} len=${len.toString(16).padStart(8, '0')} crc=`;
}

/** One slot's bytes: header + payload (the caller writes them at the slot's offset). */
export function encodeSlot(seq: number, payload: Uint8Array): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`slot sequence ${seq} is not a safe non-negative integer`);
  const prefix = prefixOf(seq, payload.length);
  const crc = crc32c(payload, crc32c(Buffer.from(prefix, 'latin1')));
  const header = `${prefix}${crc.toString(16).padStart(8, '0')}`.padEnd(SLOT_HEADER_BYTES - 1, ' ') + '\n';
  const out = Buffer.allocUnsafe(SLOT_HEADER_BYTES + payload.length);
  out.write(header, 0, 'latin1');
  out.set(payload, SLOT_HEADER_BYTES);
  return out;
}

/** Decodes the slot starting at `offset`; a string says why it holds no valid copy. */
export function decodeSlot(file: Uint8Array, offset: number, slotBytes: number): { seq: number; payload: Buffer } | string {
  const head = Buffer.from(file.buffer, file.byteOffset + offset, SLOT_HEADER_BYTES);
  if (head.every((b) => b === 0)) return 'empty';
  const m = HEADER_RE.exec(head.toString('latin1'));
  if (!m) return 'no valid header';
  const seq = Number.parseInt(m[1]!, 16);
  const len = Number.parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(seq)) return 'sequence number out of range';
  if (len > slotBytes - SLOT_HEADER_BYTES) return `length ${len} exceeds the slot`;
  const payload = Buffer.from(file.buffer, file.byteOffset + offset + SLOT_HEADER_BYTES, len);
  const want = Number.parseInt(m[3]!, 16);
  const got = crc32c(payload, crc32c(Buffer.from(prefixOf(seq, len), 'latin1')));
  if (got !== want) return 'checksum mismatch (torn or damaged write)';
  return { seq, payload: Buffer.from(payload) };
}

/** Reads both slots of `bytes` (a whole slot file) and picks the newest valid copy. */
export function scanSlots(bytes: Uint8Array): SlotScan {
  const slotBytes = bytes.length / 2;
  if (bytes.length === 0 || bytes.length % (2 * PAGE) !== 0) {
    const why = `file size ${bytes.length} is not two slots of a multiple of ${PAGE} bytes`;
    return { newest: undefined, problems: [why, why], slotBytes };
  }
  let newest: SlotCopy | undefined;
  const problems: [string | undefined, string | undefined] = [undefined, undefined];
  for (const slot of [0, 1] as const) {
    const r = decodeSlot(bytes, slot * slotBytes, slotBytes);
    if (typeof r === 'string') problems[slot] = r;
    else if (newest === undefined || r.seq > newest.seq) newest = { slot, seq: r.seq, payload: r.payload };
  }
  return { newest, problems, slotBytes };
}

function slotSizeFor(recordBytes: number): number {
  let s = MIN_SLOT_BYTES;
  // Room to double before the next (slow, rename-path) growth.
  while (s < 2 * recordBytes) s *= 2;
  return s;
}

/**
 * The writer. Not safe for concurrent write() calls (DesiredState runs one write at a time); one process owns
 * the file.
 */
export class SlotFile {
  readonly path: string;
  /** Inline on a memory file system (the write is a copy there), the thread pool elsewhere: see FileOps. */
  private readonly ops: FileOps;
  private fd: number | undefined;
  private slotBytes: number;
  /** The slot holding the newest durable copy, and its sequence number. */
  private current: 0 | 1;
  private seq: number;

  private constructor(path: string, fd: number | undefined, slotBytes: number, current: 0 | 1, seq: number) {
    this.path = path;
    this.ops = fileOpsFor(dirname(path));
    this.fd = fd;
    this.slotBytes = slotBytes;
    this.current = current;
    this.seq = seq;
  }

  /** Reads an existing slot file; `undefined` when there is none. Throws what readFile throws otherwise. */
  static async read(path: string): Promise<SlotScan | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return scanSlots(bytes);
  }

  /** A writer continuing after `scan`'s newest copy (which must exist). */
  static resume(path: string, scan: SlotScan & { newest: SlotCopy }): SlotFile {
    return new SlotFile(path, undefined, scan.slotBytes, scan.newest.slot, scan.newest.seq);
  }

  /** Creates (or replaces) the file whole with `payload` as its only copy, durably, through the rename path. */
  static async create(path: string, payload: Uint8Array, seq = 1): Promise<SlotFile> {
    const f = new SlotFile(path, undefined, 0, 0, seq - 1);
    await f.rewrite(payload, seq);
    return f;
  }

  get sequence(): number {
    return this.seq;
  }

  /** Bytes per slot (half the file). */
  get capacity(): number {
    return this.slotBytes;
  }

  /** Makes `payload` the newest durable copy; resolves once it is on stable storage. */
  async write(payload: Uint8Array): Promise<void> {
    const seq = this.seq + 1;
    if (SLOT_HEADER_BYTES + payload.length > this.slotBytes) {
      await this.rewrite(payload, seq);
      return;
    }
    const target: 0 | 1 = this.current === 0 ? 1 : 0;
    const buf = encodeSlot(seq, payload);
    // No await when the file is open: the write is queued before the caller's next step (see AppService.deploy).
    const fd = this.fd ?? (await this.descriptor());
    await this.ops.writeAll(fd, buf, target * this.slotBytes);
    if (DSYNC === undefined) await this.ops.fsync(fd);
    // Only now: until the write is durable the other slot stays the one to keep (a failed write is retried
    // into the same, expendable slot).
    this.current = target;
    this.seq = seq;
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await this.ops.close(fd);
  }

  private async descriptor(): Promise<number> {
    this.fd ??= await this.ops.open(this.path, fs.constants.O_RDWR | (DSYNC ?? 0));
    return this.fd;
  }

  /** New file (first write, growth): slot 0 holds the copy, slot 1 is zeros, every byte written, then renamed in. */
  private async rewrite(payload: Uint8Array, seq: number): Promise<void> {
    const slotBytes = slotSizeFor(SLOT_HEADER_BYTES + payload.length);
    const whole = Buffer.alloc(2 * slotBytes);
    whole.set(encodeSlot(seq, payload), 0);
    await writeFileAtomic(this.path, whole);
    // The old descriptor points at the replaced inode; the next write opens the new one.
    const old = this.fd;
    this.fd = undefined;
    this.slotBytes = slotBytes;
    this.current = 0;
    this.seq = seq;
    if (old !== undefined) await this.ops.close(old).catch(() => undefined);
  }
}
