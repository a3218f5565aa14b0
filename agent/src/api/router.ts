import type { IncomingMessage, ServerResponse } from 'node:http';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, params: readonly string[]) => Promise<void>;

export interface Route {
  readonly method: string;
  /** Path with `:param` segments, e.g. /v1/apps/:name/call. */
  readonly path: string;
  readonly handler: Handler;
  /** Largest body this route reads (checked against Content-Length before `100 Continue`); default: JSON bodies. */
  readonly bodyLimit?: (req: IncomingMessage) => number;
}

interface Compiled extends Route {
  readonly re: RegExp;
}

/** A small table router: exact paths and `:param` segments; the matched route's path is the metrics label. */
export class Router {
  private readonly routes: Compiled[];

  constructor(routes: readonly Route[]) {
    this.routes = routes.map((r) => ({ ...r, re: new RegExp(`^${r.path.replace(/:[a-z]+/g, '([^/]+)')}$`) }));
  }

  /**
   * Finds the route for a request. Not `new URL()`: it would resolve `%2E%2E` segments away, hiding a bad name
   * from validation; parameters are decoded after matching, so an encoded `/` stays inside its segment.
   */
  match(method: string, pathname: string): { route: Route; params: string[] } {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      let params: string[];
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        throw new AgentError('AGT_ERR_BAD_REQUEST', `path ${pathname} has a malformed %-escape`);
      }
      return { route: r, params };
    }
    if (pathMatched) throw new AgentError('AGT_ERR_BAD_REQUEST', `method ${method} is not allowed on ${pathname}`, { rule: 'method' });
    throw new AgentError('AGT_ERR_NOT_FOUND', `no API route ${method} ${pathname}`);
  }

  list(): ReadonlyArray<{ method: string; path: string }> {
    return this.routes.map((r) => ({ method: r.method, path: r.path }));
  }
}

/** Bounds how many large bodies are buffered at once; the rest wait their turn (FIFO). */
export class Gate {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}
