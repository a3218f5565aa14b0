import { crc32cJs } from '../crc/index.js';
import { AgentError } from '../errors/index.js';
import {
  DATA_OFFSET,
  LAYOUT_VERSION,
  MAX_RING_SIZE,
  MIN_RING_SIZE,
  REGION_MAGIC,
  RING_CTRL_OFFSET,
  SIDE_OFFSET,
  Side,
  isPowerOfTwo,
  regionSizeFor,
} from './layout.js';

export interface RingMemory {
  /** Int32 view of the whole region; ring words are addressed by byte offset / 4. */
  readonly words: Int32Array;
  /** Byte offset of this ring's control block. */
  readonly ctrl: number;
  /** This ring's data area. */
  readonly data: Uint8Array;
  readonly dataView: DataView;
}

export interface RegionInfo {
  readonly regionSize: number;
  readonly ringSize: number;
}

/**
 * A typed window on a mapped shared region. Reads the header once, checks it, and from then on uses only its
 * private copy of the geometry.
 */
export class Region {
  readonly buffer: ArrayBuffer;
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
  readonly info: RegionInfo;

  private constructor(buffer: ArrayBuffer, info: RegionInfo) {
    this.buffer = buffer;
    this.words = new Int32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.info = Object.freeze({ ...info });
  }

  /**
   * Writes a fresh header and zeroes every control word and the data areas. Only the creator (the runner) does
   * this. The data goes too: records of a previous session left in place are valid frames, and a peer that still
   * believed in the old indices could otherwise make the new consumer read them as new (zeros fail the magic).
   */
  static initialise(buffer: ArrayBuffer, ringSize: number): Region {
    if (!isPowerOfTwo(ringSize) || ringSize < MIN_RING_SIZE || ringSize > MAX_RING_SIZE) {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', `ring size ${ringSize} must be a power of two from ${MIN_RING_SIZE} to ${MAX_RING_SIZE}`);
    }
    const regionSize = regionSizeFor(ringSize);
    if (buffer.byteLength < regionSize) {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', `region buffer is ${buffer.byteLength} bytes, ring size ${ringSize} needs ${regionSize}`);
    }
    const bytes = new Uint8Array(buffer);
    bytes.fill(0, 0, regionSize);
    const view = new DataView(buffer);
    // Magic last, so a peer that polls for it never sees a half-written header.
    view.setUint32(8, LAYOUT_VERSION, true);
    view.setUint32(12, regionSize, true);
    view.setUint32(16, ringSize, true);
    view.setUint32(20, DATA_OFFSET, true);
    view.setUint32(24, DATA_OFFSET + ringSize, true);
    for (let i = 0; i < 8; i++) bytes[i] = REGION_MAGIC.charCodeAt(i);
    view.setUint32(28, crc32cJs(bytes.subarray(0, 28)), true);
    return new Region(buffer, { regionSize, ringSize });
  }

  /** Checks the header written by the creator; throws AGT_ERR_CHANNEL_REGION naming the bad field. */
  static attach(buffer: ArrayBuffer): Region {
    const fail = (what: string, offset: number): never => {
      throw new AgentError('AGT_ERR_CHANNEL_REGION', `region header: ${what} at byte ${offset}`, { offset });
    };
    if (buffer.byteLength < DATA_OFFSET) fail(`region is only ${buffer.byteLength} bytes`, 0);
    const bytes = new Uint8Array(buffer);
    const view = new DataView(buffer);
    for (let i = 0; i < 8; i++) if (bytes[i] !== REGION_MAGIC.charCodeAt(i)) fail(`magic is not "${REGION_MAGIC}"`, 0);
    const crc = crc32cJs(bytes.subarray(0, 28));
    if (view.getUint32(28, true) !== crc) fail('header CRC32C mismatch', 28);
    const version = view.getUint32(8, true);
    if (version !== LAYOUT_VERSION) fail(`layout version ${version} (expected ${LAYOUT_VERSION})`, 8);
    const regionSize = view.getUint32(12, true);
    const ringSize = view.getUint32(16, true);
    if (!isPowerOfTwo(ringSize) || ringSize < MIN_RING_SIZE || ringSize > MAX_RING_SIZE) fail(`ring size ${ringSize} is not a power of two >= ${MIN_RING_SIZE}`, 16);
    if (regionSize !== regionSizeFor(ringSize) || regionSize > buffer.byteLength) {
      fail(`region size ${regionSize} does not match ring size ${ringSize} and mapping ${buffer.byteLength}`, 12);
    }
    if (view.getUint32(20, true) !== DATA_OFFSET || view.getUint32(24, true) !== DATA_OFFSET + ringSize) {
      fail('ring data offsets do not match the layout', 20);
    }
    return new Region(buffer, { regionSize, ringSize });
  }

  /** Whether a valid header is present (a peer polls this while the creator starts). */
  static hasHeader(buffer: ArrayBuffer): boolean {
    try {
      Region.attach(buffer);
      return true;
    } catch {
      return false;
    }
  }

  /** Ring 0 carries agent -> runner, ring 1 runner -> agent. */
  ring(index: 0 | 1): RingMemory {
    const offset = DATA_OFFSET + index * this.info.ringSize;
    return {
      words: this.words,
      ctrl: RING_CTRL_OFFSET[index],
      data: new Uint8Array(this.buffer, offset, this.info.ringSize),
      dataView: new DataView(this.buffer, offset, this.info.ringSize),
    };
  }

  sideWord(side: Side, fieldOffset: number): number {
    return (SIDE_OFFSET[side] + fieldOffset) >> 2;
  }
}
