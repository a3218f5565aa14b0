export { PAD_WORD, RECORD_ALIGN, RingConsumer, RingProducer, frameSlot, maxBodyFor, recordSize } from './spsc.js';
export type { FrameSlot, FrameToSend, RingFault } from './spsc.js';
