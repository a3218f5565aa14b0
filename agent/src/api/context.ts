import type { Logger } from '../../../runner-proto/src/log/index.js';
import type { AgentCore } from '../core/index.js';
import type { Inbox } from '../inbox/index.js';
import type { Gate } from './router.js';

/** What route handlers share. */
export interface ApiContext {
  readonly core: AgentCore;
  readonly logger: Logger;
  readonly maxJsonBytes: number;
  readonly maxInvokeBytes: number;
  /** Bounds module bodies buffered at once. */
  readonly uploads: Gate;
  readonly inbox?: Inbox;
}
