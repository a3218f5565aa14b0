export { PAD_WORD, RECORD_ALIGN, RingConsumer, RingProducer, maxBodyFor, recordSize } from './spsc.js';
export type { FrameToSend, RingFault } from './spsc.js';
