export {
  FRAME_HEADER_SIZE,
  FRAME_MAGIC,
  FLAG_BODY_CRC,
  FLAG_JSON,
  HOST_LITTLE_ENDIAN,
  checkHeaderWords,
  headerWord0,
  bodyCrcFor,
  checkBody,
  decodeFrame,
  describeFault,
  encodeFrame,
  isFault,
  readHeader,
  writeHeader,
} from './codec.js';
export type { Frame, FrameFault, FrameHeader } from './codec.js';
export { allocBytes, copyBytes, utf8Bytes } from './bytes.js';
