/**
 * What the API server and its clients agree on, kept free of heavy imports so the CLI starts fast.
 * Binary WebSocket messages of a run carry output: one tag byte for the stream, then the bytes.
 */
export const API_PREFIX = '/v1';
export const WS_STDOUT = 1;
export const WS_STDERR = 2;
