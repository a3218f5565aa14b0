export { RingTransport } from './ring-transport.js';
export type { RingTransportOptions } from './ring-transport.js';
export { STREAM_MAX_BODY, StreamTransport } from './stream-transport.js';
export type { FrameTransport, TransportFault, TransportHandlers } from './types.js';
