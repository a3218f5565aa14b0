export { Endpoint } from './endpoint.js';
export type { EndpointOptions, FrameHandler, RequestOptions } from './endpoint.js';
export { HEARTBEAT_MS, PEER_STALE_MS, attachRing, bellPath, connectStream, createRing, peerState } from './connect.js';
export type { RingLink, RingOptions } from './connect.js';
export { CharDeviceStream, openSerial } from './serial.js';
