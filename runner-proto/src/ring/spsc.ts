import { crc32c, crc32cHeaderWords } from '../crc/index.js';
import {
  FLAG_BODY_CRC,
  FRAME_HEADER_SIZE,
  HOST_LITTLE_ENDIAN,
  bodyCrcFor,
  checkHeaderWords,
  copyBytes,
  headerWord0,
  type Frame,
  type FrameFault,
} from '../frame/index.js';
import { CTRL_DOORBELL, CTRL_HEAD, CTRL_RESET_ACK, CTRL_RESET_REQ, CTRL_TAIL, CTRL_WANT_KICK } from '../region/index.js';
import type { RingMemory } from '../region/index.js';

/*
 * A single-producer single-consumer ring of variable-size frames (sDDF's index discipline, with frames stored
 * inline rather than as descriptors into a separate pool, so one copy in and one copy out is all it costs).
 *
 * - head and tail are free-running u32 byte counters; only the producer writes tail, only the consumer head.
 * - A record is a frame (24-byte header + body) padded to 8 bytes and never split: when it does not fit before
 *   the end of the data area, the producer writes the PAD word there and continues at offset 0.
 * - Publication order: bytes first, then Atomics.store(tail) (seq-cst, a release barrier on x86 and Arm).
 * - The consumer validates every header (magic, CRC, length within the ring and the bytes published) before it
 *   reads a body, so a corrupted ring can never make it read outside the data area.
 * - Resync after corruption: the consumer bumps reset-req and reads nothing more; the producer, at its next
 *   write or service call, sets tail to 0 and reset-ack to the request; the consumer then sets head to 0.
 *   Frames in flight are lost (the endpoint's timeouts and retries cover them); neither side restarts.
 */
export const PAD_WORD = 0xffffffff;
/** Bodies up to this size are copied ring to ring by a word loop (tryWriteFrom); larger ones by set(). */
const WORD_COPY_MAX = 256;
export const RECORD_ALIGN = 8;

export function recordSize(bodyLength: number): number {
  return (FRAME_HEADER_SIZE + bodyLength + RECORD_ALIGN - 1) & ~(RECORD_ALIGN - 1);
}

/** The largest body a ring of `capacity` bytes accepts: half the ring, so a record always fits once drained. */
export function maxBodyFor(capacity: number): number {
  return capacity / 2 - FRAME_HEADER_SIZE;
}

/** The fault of a record that runs past what is published or past the end of the data area. */
function overrun(need: number, published: number, beforeEnd: number): RingFault {
  return { code: 'overrun', need, available: Math.min(published, beforeEnd) };
}

export type RingFault =
  | FrameFault
  | { readonly code: 'bad-index'; readonly head: number; readonly tail: number; readonly capacity: number }
  | { readonly code: 'overrun'; readonly need: number; readonly available: number };

export interface FrameToSend {
  readonly type: number;
  readonly flags: number;
  readonly corr: number;
  readonly body: Uint8Array;
}

/**
 * A frame's header as RingConsumer.peek() found it, its body left in the ring: `start` is its offset in the data
 * area and `length` its size. One slot is reused for every frame, so a peek allocates nothing.
 */
export interface FrameSlot {
  type: number;
  flags: number;
  seq: number;
  corr: number;
  start: number;
  length: number;
  /** The header's body CRC word (0 unless flags carry FLAG_BODY_CRC). */
  bodyCrc: number;
  /** Where head goes once this frame is taken (past its record, and past a PAD before it). */
  next: number;
}

export function frameSlot(): FrameSlot {
  return { type: 0, flags: 0, seq: 0, corr: 0, start: 0, length: 0, bodyCrc: 0, next: 0 };
}

/**
 * What both ends know of one ring: its memory and geometry, fixed at attach.
 *
 * Both ends keep the free-running u32 counters (tail, head, seq) as int32, with `| 0` arithmetic: the same 32 bits,
 * as a number V8 can keep in a machine word. As u32 (`>>> 0`) a counter past 2^31 is no int32: the functions doing
 * arithmetic on it were deoptimised there and ran on doubles, and sending 64 KiB frames ran at half speed for the
 * next gigabyte or so. Differences of two counters are taken `| 0` as well (`>>> 0` keeps V8's int32 overflow
 * check on the subtraction): between 0 and the capacity on a sane ring, negative or larger on a damaged one, which
 * the checks refuse.
 */
abstract class RingEnd {
  protected readonly mem: RingMemory;
  /**
   * The data area as u32 words, when the host's word order is the frame's (else the DataView path is used). Read
   * by the other kind of end too (tryWriteFrom copies from a consumer's ring).
   */
  readonly u32: Uint32Array | undefined;
  protected readonly capacity: number;
  protected readonly mask: number;
  readonly maxBody: number;
  /** The region's words and this ring's control words as indices into them, resolved once at attach. */
  protected readonly words: Int32Array;
  /** The data area; views into it (lent bodies) are valid only until the consumer's release(). */
  readonly data: Uint8Array;
  protected readonly tailAt: number;
  protected readonly headAt: number;
  protected readonly wantKickAt: number;
  protected readonly doorbellAt: number;
  protected readonly resetReqAt: number;
  protected readonly resetAckAt: number;

  constructor(mem: RingMemory) {
    this.mem = mem;
    this.words = mem.words;
    this.data = mem.data;
    this.tailAt = (mem.ctrl + CTRL_TAIL) >> 2;
    this.headAt = (mem.ctrl + CTRL_HEAD) >> 2;
    this.wantKickAt = (mem.ctrl + CTRL_WANT_KICK) >> 2;
    this.doorbellAt = (mem.ctrl + CTRL_DOORBELL) >> 2;
    this.resetReqAt = (mem.ctrl + CTRL_RESET_REQ) >> 2;
    this.resetAckAt = (mem.ctrl + CTRL_RESET_ACK) >> 2;
    this.capacity = mem.data.length;
    this.mask = this.capacity - 1;
    this.maxBody = maxBodyFor(this.capacity);
    this.u32 = HOST_LITTLE_ENDIAN ? new Uint32Array(mem.data.buffer, mem.data.byteOffset, mem.data.length >> 2) : undefined;
  }

  /** True if `bytes` is a view into this ring's region (a body lent by read(), valid only until release()). */
  lends(bytes: Uint8Array): boolean {
    return bytes.buffer === this.data.buffer;
  }

  /** The little-endian u32 at byte `pos` of the data area (4-aligned): one load on a little-endian host. */
  protected word(pos: number): number {
    const u32 = this.u32;
    return u32 !== undefined ? u32[pos >> 2]! : this.mem.dataView.getUint32(pos, true);
  }

  protected setWord(pos: number, value: number): void {
    const u32 = this.u32;
    if (u32 !== undefined) u32[pos >> 2] = value;
    else this.mem.dataView.setUint32(pos, value, true);
  }
}

export class RingProducer extends RingEnd {
  private tail: number;
  /** The tail as this producer last published it; anything else in the tail word means someone reset the ring. */
  private publishedTail: number;
  /**
   * The consumer's head as last read. It only moves forward, so space computed from a stale copy is never more
   * than is really free; re-reading it only when that space runs out keeps the producer off the consumer's
   * cache line (and its reset request, which shares it) on every write.
   */
  private head: number;
  private seq = 0;
  /** Kicks actually sent; the rest were suppressed because the consumer was not asleep. */
  kicks = 0;

  constructor(mem: RingMemory) {
    super(mem);
    this.tail = this.saneTail();
    this.publishedTail = this.tail;
    this.head = this.loadHead();
  }

  private loadHead(): number {
    return Atomics.load(this.words, this.headAt);
  }

  /**
   * The published tail if it is plausible; otherwise (a crashed or scribbling writer) the consumer's head, so
   * the ring reads as empty. The producer owns tail, so it may repair it.
   */
  private saneTail(): number {
    const w = this.words;
    const tail = Atomics.load(w, this.tailAt);
    const head = Atomics.load(w, this.headAt);
    const used = (tail - head) | 0;
    if ((tail & (RECORD_ALIGN - 1)) === 0 && used >= 0 && used <= this.capacity) return tail;
    const repaired = head & ~(RECORD_ALIGN - 1);
    Atomics.store(w, this.tailAt, repaired);
    return repaired;
  }

  resets = 0;

  /**
   * Carries out a pending reset request from the consumer. Returns true if it did; the caller should then kick
   * so a consumer waiting for the ack wakes up.
   */
  serviceReset(): boolean {
    const w = this.words;
    const req = Atomics.load(w, this.resetReqAt);
    if (req === Atomics.load(w, this.resetAckAt)) return false;
    this.tail = 0;
    this.publishedTail = 0;
    // The consumer moves head to 0 once it sees the ack, and reads nothing before: 0 is its head from now on.
    this.head = 0;
    Atomics.store(w, this.tailAt, 0);
    Atomics.store(w, this.resetAckAt, req);
    Atomics.add(w, this.doorbellAt, 1);
    this.resets++;
    return true;
  }

  /** The consumer's reset-request word, for waiters that must notice a request promptly. */
  resetRequested(): number {
    return Atomics.load(this.words, this.resetReqAt);
  }

  /** Bumps the doorbell unconditionally (used with reset requests, which travel against the data flow). */
  ringDoorbell(): void {
    Atomics.add(this.words, this.doorbellAt, 1);
  }

  /** Bytes free right now, as seen from the producer. */
  free(): number {
    const used = (this.tail - this.loadHead()) | 0;
    return used < 0 ? 0 : Math.max(0, this.capacity - used);
  }

  /**
   * Writes one frame if it fits; returns false when the ring is full (back-pressure: the caller waits for the
   * consumer to move head). Does not publish: call publish() after a batch.
   */
  tryWrite(f: FrameToSend): boolean {
    const len = f.body.length;
    const pos = this.reserve(len);
    if (pos < 0) return false;
    this.data.set(f.body, pos + FRAME_HEADER_SIZE);
    this.commitRecord(pos, f.type, f.flags, f.corr, len, bodyCrcFor(f.flags, f.body));
    return true;
  }

  /**
   * Writes a frame whose body is the one `from` has just peeked into `slot`, copied ring to ring: an answer that
   * returns a request's bytes (ECHO's) with no view, copy-out or allocation. Then skip() the frame on `from`.
   * Returns false when this ring is full. Does not publish.
   */
  tryWriteFrom(type: number, flags: number, corr: number, from: RingConsumer, slot: FrameSlot): boolean {
    const len = slot.length;
    const pos = this.reserve(len);
    if (pos < 0) return false;
    const at = pos + FRAME_HEADER_SIZE;
    const src = from.u32;
    const dst = this.u32;
    if (len <= WORD_COPY_MAX && src !== undefined && dst !== undefined) {
      // Both bodies start 8-aligned and records are padded to 8, so whole words stay inside both records. For a
      // small body this loop beats set(), which needs a subarray view made first.
      const d = at >> 2;
      const sw = slot.start >> 2;
      for (let k = 0, n = (len + 3) >> 2; k < n; k++) dst[d + k] = src[sw + k]!;
    } else {
      this.data.set(from.data.subarray(slot.start, slot.start + len), at);
    }
    // A body CRC is computed over our own copy: the bytes the consumer will check.
    const crc = (flags & FLAG_BODY_CRC) !== 0 ? crc32c(this.data.subarray(at, at + len)) : 0;
    this.commitRecord(pos, type, flags, corr, len, crc);
    return true;
  }

  /**
   * Finds room for a record with a body of `len` bytes, writing the PAD and wrapping to offset 0 when it does not
   * fit before the end of the data area. Returns its position, or -1 when the ring is full; throws RangeError for
   * a body larger than the ring takes.
   */
  private reserve(len: number): number {
    if (len > this.maxBody) throw new RangeError(`frame body of ${len} bytes exceeds the ring maximum ${this.maxBody}`);
    // The tail word is ours alone, so this load stays in our cache, unless the region was re-initialised under
    // us (a restarted runner zeroes every control word). Writing on from our old tail would then publish a tail
    // far ahead of the new consumer's head, and it would read the previous session's records still lying in the
    // data area as if they were new: start over from what is published instead.
    // A plain read is enough for this check (it only has to see a re-initialisation sooner or later) and costs
    // no call into the Atomics builtin on every frame.
    if (this.words[this.tailAt] !== this.publishedTail) {
      this.resync();
    }
    const need = recordSize(len);
    let pos = this.tail & this.mask;
    const contiguous = this.capacity - pos;
    const want = need > contiguous ? contiguous + need : need;
    const cachedUsed = (this.tail - this.head) | 0;
    if (cachedUsed < 0 || this.capacity - cachedUsed < want) {
      // Out of space by the cached head: look at the consumer's side (a pending reset, then its real head).
      if (this.serviceReset()) pos = 0;
      this.head = this.loadHead();
    }
    const used = (this.tail - this.head) | 0;
    if (used < 0 || used > this.capacity) return -1; // consumer index is nonsense: refuse to write until a reset
    const free = this.capacity - used;
    if (need > this.capacity - pos) {
      const contiguous = this.capacity - pos;
      if (free < contiguous + need) return -1;
      this.setWord(pos, PAD_WORD);
      this.tail = (this.tail + contiguous) | 0;
      return 0;
    }
    return free < need ? -1 : pos;
  }

  /** The header of the record at `pos` (its body already written), then seq and tail move past it. */
  private commitRecord(pos: number, type: number, flags: number, corr: number, len: number, bodyCrc: number): void {
    // The header as six words with its CRC computed from the values (the same bytes as writeHeader in the frame
    // codec): per-byte DataView stores and a CRC read back from the ring were most of a small frame's cost.
    const w0 = headerWord0(type, flags);
    const w2 = this.seq;
    const w3 = corr >>> 0;
    const w5 = crc32cHeaderWords(w0, len, w2, w3, bodyCrc);
    const u32 = this.u32;
    if (u32 !== undefined) {
      const i = pos >> 2;
      u32[i] = w0;
      u32[i + 1] = len;
      u32[i + 2] = w2;
      u32[i + 3] = w3;
      u32[i + 4] = bodyCrc;
      u32[i + 5] = w5;
    } else {
      this.setWord(pos, w0);
      this.setWord(pos + 4, len);
      this.setWord(pos + 8, w2);
      this.setWord(pos + 12, w3);
      this.setWord(pos + 16, bodyCrc);
      this.setWord(pos + 20, w5);
    }
    this.seq = (this.seq + 1) | 0;
    this.tail = (this.tail + recordSize(len)) | 0;
  }

  /**
   * Makes written frames visible, then applies the flag-and-recheck rule: kick only if the consumer said it is
   * going to sleep. Returns true if the caller must ring the doorbell.
   */
  publish(): boolean {
    const w = this.words;
    Atomics.store(w, this.tailAt, this.tail);
    this.publishedTail = this.tail;
    if (Atomics.load(w, this.wantKickAt) !== 0 && Atomics.compareExchange(w, this.wantKickAt, 1, 0) === 1) {
      Atomics.add(w, this.doorbellAt, 1);
      this.kicks++;
      return true;
    }
    return false;
  }

  /** Forgets local state and adopts the published tail (after a ring reset). */
  resync(): void {
    this.tail = this.saneTail();
    this.publishedTail = this.tail;
    this.head = this.loadHead();
  }

  /** The tail as the u32 the protocol speaks of (tail, head and seq are kept as int32 here: see RingEnd). */
  get published(): number {
    return this.tail >>> 0;
  }
}

export class RingConsumer extends RingEnd {
  private head: number;

  constructor(mem: RingMemory) {
    super(mem);
    this.head = Atomics.load(this.words, this.headAt);
  }

  private loadTail(): number {
    return Atomics.load(this.words, this.tailAt);
  }

  isEmpty(): boolean {
    // While a reset waits for its ack there is nothing to read: report empty so the caller sleeps (the ack
    // bumps the doorbell) instead of spinning with the event loop blocked.
    if (this.resetPending && this.resetInProgress()) return true;
    return this.loadTail() === this.head;
  }

  private readonly slot = frameSlot();

  /**
   * Reads the next frame, or undefined if the ring is empty, or a fault if what is published is not a valid
   * frame. The body is copied out unless `borrow(type)` says the caller will use it before release(); head
   * moves only on success (call release() to publish head).
   */
  read(borrow?: (type: number) => boolean): Frame | RingFault | undefined {
    const s = this.slot;
    const found = this.peek(s);
    if (found !== true) return found === false ? undefined : found;
    return this.take(s, borrow?.(s.type) === true);
  }

  /**
   * Checks the next frame's header (magic, CRC, lengths within the ring and within what is published) and
   * fills `slot` from it: true. false if the ring is empty; a fault if what is published is not a valid frame.
   * Head does not move: take() or skip() the frame next. The body is not looked at (take() checks its CRC).
   */
  peek(slot: FrameSlot): RingFault | boolean {
    if (this.resetInProgress()) return false;
    const tail = this.loadTail();
    let avail = (tail - this.head) | 0;
    if (avail === 0) return false;
    if (avail < 0 || avail > this.capacity || (avail & (RECORD_ALIGN - 1)) !== 0) return this.badIndex(this.head, tail);
    let head = this.head;
    let pos = head & this.mask;
    if (this.word(pos) === PAD_WORD) {
      const skip = this.capacity - pos;
      if (skip >= avail) return this.badIndex(head, tail);
      head = (head + skip) | 0;
      avail -= skip;
      pos = 0;
    }
    if (avail < FRAME_HEADER_SIZE || this.capacity - pos < FRAME_HEADER_SIZE) return overrun(FRAME_HEADER_SIZE, avail, this.capacity - pos);
    // The header is loaded once into six locals: the private copy every check and every field comes from (the
    // peer could rewrite the shared words between a check and their use).
    let w0: number, w1: number, w2: number, w3: number, w4: number, w5: number;
    const u32 = this.u32;
    if (u32 !== undefined) {
      const i = pos >> 2;
      w0 = u32[i]!;
      w1 = u32[i + 1]!;
      w2 = u32[i + 2]!;
      w3 = u32[i + 3]!;
      w4 = u32[i + 4]!;
      w5 = u32[i + 5]!;
    } else {
      w0 = this.word(pos);
      w1 = this.word(pos + 4);
      w2 = this.word(pos + 8);
      w3 = this.word(pos + 12);
      w4 = this.word(pos + 16);
      w5 = this.word(pos + 20);
    }
    const fault = checkHeaderWords(w0, w1, w2, w3, w4, w5, this.maxBody);
    if (fault !== undefined) return fault;
    const need = recordSize(w1);
    if (need > avail || need > this.capacity - pos) return overrun(need, avail, this.capacity - pos);
    slot.type = (w0 >>> 16) & 0xff;
    slot.flags = w0 >>> 24;
    slot.seq = w2;
    slot.corr = w3;
    slot.start = pos + FRAME_HEADER_SIZE;
    slot.length = w1;
    slot.bodyCrc = w4;
    slot.next = (head + need) | 0;
    return true;
  }

  // Faults are built out of line, so peek()'s own code is the path every good frame takes.
  private badIndex(head: number, tail: number): RingFault {
    return { code: 'bad-index', head: head >>> 0, tail: tail >>> 0, capacity: this.capacity };
  }

  /**
   * Takes the frame peek() just put in `slot`: its body is a view into the ring when `borrow` (valid only until
   * release()), else a private copy; a body that carries a CRC is checked on what is handed out. Head moves only
   * on success.
   */
  take(slot: FrameSlot, borrow: boolean): Frame | RingFault {
    const start = slot.start;
    const end = start + slot.length;
    const body = borrow ? this.data.subarray(start, end) : copyBytes(this.data, start, end);
    if ((slot.flags & FLAG_BODY_CRC) !== 0) {
      const want = crc32c(body);
      if (want !== slot.bodyCrc) return { code: 'body-crc', got: slot.bodyCrc, want };
    }
    this.head = slot.next;
    return { type: slot.type, flags: slot.flags, seq: slot.seq, corr: slot.corr, body };
  }

  /**
   * Moves past the frame peek() just put in `slot` without making a body: for a caller that consumed it in place
   * (RingProducer.tryWriteFrom). Its body CRC, if it carries one, is not checked.
   */
  skip(slot: FrameSlot): void {
    this.head = slot.next;
  }

  /** Publishes head so the producer can reuse the space. */
  release(): void {
    Atomics.store(this.words, this.headAt, this.head);
  }

  /**
   * The consumer half of flag-and-recheck: ask for a kick, then look again. Returns true if it is safe to sleep
   * (ring still empty with the flag set); false means work arrived and the flag was withdrawn.
   */
  armKick(): boolean {
    const w = this.words;
    Atomics.store(w, this.wantKickAt, 1);
    if (!this.isEmpty()) {
      Atomics.store(w, this.wantKickAt, 0);
      return false;
    }
    return true;
  }

  disarmKick(): void {
    Atomics.store(this.words, this.wantKickAt, 0);
  }

  doorbell(): number {
    return Atomics.load(this.words, this.doorbellAt);
  }

  private resetPending = false;

  /** Asks the producer to restart the ring at 0; reads return undefined until it has. */
  requestReset(): void {
    const w = this.words;
    this.resetPending = true;
    const ack = Atomics.load(w, this.resetAckAt);
    Atomics.store(w, this.resetReqAt, (ack + 1) | 0);
  }

  /** True while a reset is requested and not yet carried out. Completes it when the ack has arrived. */
  resetInProgress(): boolean {
    if (!this.resetPending) return false;
    const w = this.words;
    if (Atomics.load(w, this.resetAckAt) !== Atomics.load(w, this.resetReqAt)) return true;
    this.head = 0;
    this.release();
    this.resetPending = false;
    return false;
  }

  /**
   * Takes back a reset request nobody is waiting for any more: one left by a consumer of an earlier session
   * (say, an agent that saw a re-initialised region as a bad frame before it saw the new epoch). Serviced later,
   * it would make the producer drop the first frames of the new session. A producer that acks the old request
   * while we withdraw it leaves ack ahead of the request, so look again until the two agree.
   */
  withdrawReset(): void {
    const w = this.words;
    this.resetPending = false;
    for (let i = 0; i < 4; i++) {
      const ack = Atomics.load(w, this.resetAckAt);
      if (Atomics.load(w, this.resetReqAt) === ack) return;
      Atomics.store(w, this.resetReqAt, ack);
    }
  }

  /** Drops everything published (a new session starts): the consumer side of a soft resync. */
  skipToTail(): number {
    const tail = this.loadTail();
    const dropped = (tail - this.head) >>> 0;
    this.head = tail;
    this.release();
    return dropped;
  }
}
