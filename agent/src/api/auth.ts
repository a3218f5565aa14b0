import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

/**
 * Bearer-token check for the TCP listener. Both sides are hashed first so the comparison has a fixed length,
 * and timingSafeEqual keeps it constant-time: the time taken says nothing about how much of a guess matched.
 */
export class BearerAuth {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = createHash('sha256').update(token).digest();
  }

  check(req: IncomingMessage): void {
    const h = req.headers.authorization;
    if (h === undefined) throw new AgentError('AGT_ERR_UNAUTHORIZED', 'this listener requires "Authorization: Bearer <token>"', { rule: 'token-missing' });
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
    if (!m) throw new AgentError('AGT_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"', { rule: 'token-format' });
    const given = createHash('sha256').update(m[1]!).digest();
    if (!timingSafeEqual(given, this.expected)) throw new AgentError('AGT_ERR_UNAUTHORIZED', 'the bearer token is not valid', { rule: 'token-invalid' });
  }
}
