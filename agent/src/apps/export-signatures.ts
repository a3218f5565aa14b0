import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { inspectModule, type FuncSignature } from '../check/index.js';

/**
 * Exported function signatures per module digest, learnt once from the module bytes (the checker's parser),
 * so calls can be typed and checked in the agent. Bounded: the oldest entries go when it is full.
 */
export class ExportSignatures {
  private readonly byDigest = new Map<string, ReadonlyMap<string, FuncSignature>>();
  private readonly loading = new Map<string, Promise<ReadonlyMap<string, FuncSignature>>>();
  private readonly max: number;

  constructor(max = 256) {
    this.max = max;
  }

  /** Records what an upload's check already parsed, so the first call pays nothing. */
  remember(digest: string, exports: ReadonlyArray<{ name: string; kind: string; signature?: FuncSignature }>): void {
    const m = new Map<string, FuncSignature>();
    for (const e of exports) if (e.kind === 'function' && e.signature) m.set(e.name, e.signature);
    this.byDigest.delete(digest);
    this.byDigest.set(digest, m);
    while (this.byDigest.size > this.max) this.byDigest.delete(this.byDigest.keys().next().value!);
  }

  /** The signature of `fn` in module `digest`; loads the module on first use. */
  async get(digest: string, fn: string, load: () => Promise<Uint8Array>): Promise<FuncSignature> {
    let m = this.byDigest.get(digest);
    if (!m) {
      let p = this.loading.get(digest);
      if (!p) {
        p = load().then((bytes) => {
          this.remember(digest, inspectModule(bytes).exports);
          return this.byDigest.get(digest)!;
        });
        this.loading.set(digest, p);
        void p.finally(() => this.loading.delete(digest)).catch(() => undefined);
      }
      m = await p;
    }
    const sig = m.get(fn);
    if (!sig) {
      const names = [...m.keys()].filter((n) => !n.startsWith('_')).slice(0, 12);
      throw new AgentError('AGT_ERR_NOT_FOUND', `the module exports no function ${JSON.stringify(fn)}; it exports ${names.join(', ') || 'none'}`, { field: 'fn' });
    }
    return sig;
  }

  /** Synchronous lookup for the hot path; undefined when not loaded yet. */
  peek(digest: string, fn: string): FuncSignature | undefined {
    return this.byDigest.get(digest)?.get(fn);
  }
}
