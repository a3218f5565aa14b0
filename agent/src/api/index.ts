export { ApiServer } from './server.js';
export type { ApiServerOptions } from './server.js';
export { BearerAuth } from './auth.js';
