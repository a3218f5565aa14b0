export { API_PREFIX, ApiServer, WS_STDERR, WS_STDOUT } from './server.js';
export type { ApiServerOptions } from './server.js';
