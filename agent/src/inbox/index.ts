export { Inbox } from './inbox.js';
export type { InboxEvent, InboxOptions } from './inbox.js';
export { readSidecar } from './sidecar.js';
