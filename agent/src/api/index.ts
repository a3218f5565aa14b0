export { ApiServer } from './server.js';
export type { ApiServerOptions } from './server.js';
