import { formatOffset, malformed } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A cursor over one window of the module: a section header (window ends with the file) or a section's
 * content (window ends where the section says it does). Running past the window is a malformed-binary error
 * naming the section, never a RangeError: every read checks first.
 */
export class Reader {
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
    /** Section name for error locations. */
    readonly section: string,
    readonly window: 'header' | 'section',
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Called when a read would cross `end`; inside a section that means its size disagrees with its content. */
  overrun(at: number, what: string): never {
    if (this.window === 'header') {
      throw malformed('truncated', { section: this.section, offset: at }, `file ends inside the section header, reading ${what}`);
    }
    throw malformed(
      'section-content',
      { section: this.section, offset: at },
      `${what} runs past the end of the section at ${formatOffset(this.end)}`,
    );
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.overrun(this.pos, what);
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128 of at most 32 bits: at most 5 bytes, and the unused bits of the 5th byte must be zero. */
  u32(what: string): number {
    const start = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.u8(what);
      if (i === 4) {
        if (b & 0x80) throw this.lebError(start, what, 'is longer than 5 bytes');
        if (b & 0x70) throw this.lebError(start, what, 'does not fit in 32 bits');
      }
      // Multiplication instead of << keeps the value unsigned past 2^31.
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return result;
    }
    throw this.lebError(start, what, 'is longer than 5 bytes');
  }

  /**
   * Unsigned LEB128 of at most 64 bits (memory64 limits). Values above 2^53 are rejected rather than
   * silently rounded: no real limit is that large, and a wrong number would be worse than an error.
   */
  u64(what: string): number {
    const start = this.pos;
    let result = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.u8(what);
      if (i === 9) {
        if (b & 0x80) throw this.lebError(start, what, 'is longer than 10 bytes');
        if (b & 0x7e) throw this.lebError(start, what, 'does not fit in 64 bits');
      }
      result |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (result > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw this.lebError(start, what, `is ${result}, larger than this checker can represent (2^53 - 1)`);
        }
        return Number(result);
      }
    }
    throw this.lebError(start, what, 'is longer than 10 bytes');
  }

  /** Signed LEB128 of at most 33 bits (heap types, block types); the unused bits must sign-extend. */
  s33(what: string): number {
    const start = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.u8(what);
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        // 33 bits leave bits 4-6 of a 5th byte: bit 4 is the sign, bits 5-6 must repeat it.
        if (i === 4 && (b & 0x70) !== 0 && (b & 0x70) !== 0x70) {
          throw this.lebError(start, what, 'does not fit in 33 bits');
        }
        return b & 0x40 ? result - 2 ** (7 * (i + 1)) : result;
      }
    }
    throw this.lebError(start, what, 'is longer than 5 bytes');
  }

  bytesOf(n: number, what: string): Uint8Array {
    if (n > this.remaining) this.overrun(this.pos, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A vector count, checked against the bytes left so that a huge count cannot make us loop or allocate. */
  count(what: string, minBytesPerItem = 1): number {
    const at = this.pos;
    const n = this.u32(`${what} count`);
    if (n * minBytesPerItem > this.remaining) {
      throw malformed(
        'section-content',
        this.where(at),
        `${what} count ${n} needs at least ${n * minBytesPerItem} bytes but only ${this.remaining} remain`,
      );
    }
    return n;
  }

  name(what: string): string {
    const at = this.pos;
    const len = this.u32(`${what} length`);
    const raw = this.bytesOf(len, what);
    try {
      return utf8.decode(raw);
    } catch {
      throw malformed('utf8', this.where(at), `${what} is not valid UTF-8`);
    }
  }

  where(offset: number): { section: string; offset: number } {
    return { section: this.section, offset };
  }

  private lebError(start: number, what: string, problem: string): Error {
    return malformed('leb128', this.where(start), `LEB128 ${what} ${problem}`);
  }
}
