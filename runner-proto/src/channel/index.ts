export { Endpoint } from './endpoint.js';
export type { EndpointOptions, FrameHandler } from './endpoint.js';
export { attachRing, connectStream, createRing, peerState } from './connect.js';
export type { RingLink, RingOptions } from './connect.js';
