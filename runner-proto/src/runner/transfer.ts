import { createHash } from 'node:crypto';
import { AgentError } from '../errors/index.js';
import type { ModuleBegin } from '../protocol/index.js';

/**
 * Reassembles one module sent in chunks. Memory is bounded by the size announced in MODULE_BEGIN, which the
 * runner checks against its own limit before accepting; a chunk past the announced size is a protocol error.
 */
export class ModuleAssembly {
  readonly digest: string;
  readonly size: number;
  private readonly buf: Uint8Array;
  private received = 0;
  private readonly hash = createHash('sha256');
  readonly startedAt = Date.now();

  constructor(begin: ModuleBegin, maxBytes: number) {
    if (begin.size > maxBytes) {
      throw new AgentError('AGT_ERR_TOO_LARGE', `module of ${begin.size} bytes exceeds the runner limit of ${maxBytes}`, { limit: maxBytes });
    }
    this.digest = begin.digest;
    this.size = begin.size;
    this.buf = new Uint8Array(begin.size);
  }

  add(chunk: Uint8Array): void {
    if (this.received + chunk.length > this.size) {
      throw new AgentError('AGT_ERR_PROTOCOL', `module chunk overflows the announced size ${this.size} (have ${this.received}, chunk ${chunk.length})`);
    }
    this.buf.set(chunk, this.received);
    this.hash.update(chunk);
    this.received += chunk.length;
  }

  /** Verifies completeness and the digest; returns the bytes. */
  finish(): Uint8Array {
    if (this.received !== this.size) {
      throw new AgentError('AGT_ERR_PROTOCOL', `module transfer incomplete: ${this.received} of ${this.size} bytes`);
    }
    const got = `sha256:${this.hash.digest('hex')}`;
    if (got !== this.digest) {
      throw new AgentError('AGT_ERR_DIGEST_MISMATCH', `module bytes hash to ${got}, announced ${this.digest}`);
    }
    return this.buf;
  }
}
