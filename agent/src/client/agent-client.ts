import http from 'node:http';
import { AgentError, errorFromJSON } from '../../../runner-proto/src/errors/index.js';
import type { ExitMessage } from '../../../runner-proto/src/protocol/index.js';
import { WS_STDERR, WS_STDOUT } from '../api-contract/index.js';
import type { AppSettings, AppView, DeployOutcome } from '../apps/index.js';
import type { AgentStatus, RunRequest, UploadResult } from '../core/index.js';
import type { LogEntry } from '../logs/index.js';
import type { AppSpec } from '../state/index.js';
import type { NameRecord } from '../store/index.js';

export interface RunCallbacks {
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
}

/** Where the agent listens: its Unix socket (no token), or TCP with a bearer token. */
export type AgentAddress = { readonly socketPath: string } | { readonly host: string; readonly port: number; readonly token: string };

export interface CallAnswer {
  readonly ok: boolean;
  readonly results?: ReadonlyArray<{ type: string; value: number | string }>;
  readonly reason?: string;
  readonly exitCode?: number;
  readonly message?: string;
  readonly stats: { readonly wallMs: number; readonly [k: string]: unknown };
}

export interface InvokeAnswer {
  readonly stdout: Buffer;
  readonly exitCode: number;
  readonly reason: string;
  readonly message?: string;
}

interface RequestOptions {
  readonly body?: Uint8Array | string;
  readonly headers?: Record<string, string>;
  readonly onProgress?: (sent: number) => void;
  /** Resolve with the raw answer (status, headers, bytes) instead of parsed JSON. */
  readonly raw?: boolean;
}

interface RawAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Bodies above this size are sent with `Expect: 100-continue`. */
const CONTINUE_ABOVE = 64 * 1024;

/** The CLI starts often: it checks the message shapes by hand instead of loading zod (~200 ms). */
function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Dots are escaped too, so a name like `..` reaches the agent (which refuses it) instead of being resolved away. */
function pathSegment(name: string): string {
  return encodeURIComponent(name).replace(/\./g, '%2E');
}

function unavailable(where: string, err: NodeJS.ErrnoException): AgentError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') {
    return new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `cannot reach the agent at ${where} (${err.code}); is wasmedge-agent running?`, { path: where });
  }
  return new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `agent connection failed: ${err.message}`);
}

/** Talks to the agent's API (docs/api.md); every call is bounded by a timeout. */
export class AgentClient {
  readonly address: AgentAddress;
  private readonly timeoutMs: number;
  private readonly agent: http.Agent;
  /** Until then (ms since the epoch), a socket that is not there yet or refuses is retried, not an error. */
  private readonly waitUntil: number;

  /**
   * `waitMs`: how long after construction a connection that finds no agent (ENOENT, ECONNREFUSED) is retried
   * (every 50 ms) before it is an error, so a caller may start before the agent is ready. 0 (the default): fail
   * at once.
   */
  constructor(address: string | AgentAddress, options: { timeoutMs?: number; keepAlive?: boolean; waitMs?: number } = {}) {
    this.address = typeof address === 'string' ? { socketPath: address } : address;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.agent = new http.Agent({ keepAlive: options.keepAlive ?? false });
    this.waitUntil = options.waitMs ? Date.now() + options.waitMs : 0;
  }

  /** Nothing was sent: the agent is not up (yet), and the caller said how long to wait for it. */
  private notUpYet(err: NodeJS.ErrnoException): boolean {
    return (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') && Date.now() < this.waitUntil;
  }

  get socketPath(): string | undefined {
    return 'socketPath' in this.address ? this.address.socketPath : undefined;
  }

  private where(): string {
    return 'socketPath' in this.address ? this.address.socketPath : `${this.address.host}:${this.address.port}`;
  }

  private target(): { socketPath: string } | { host: string; port: number } {
    return 'socketPath' in this.address ? { socketPath: this.address.socketPath } : { host: this.address.host, port: this.address.port };
  }

  private authHeaders(): Record<string, string> {
    return 'token' in this.address ? { authorization: `Bearer ${this.address.token}` } : {};
  }

  private send(method: string, path: string, o: RequestOptions = {}): Promise<RawAnswer> {
    return new Promise<RawAnswer>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
      };
      const body = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
      const headers: Record<string, string | number> = { ...this.authHeaders(), ...(o.headers ?? {}) };
      if (body) headers['content-length'] = body.length;
      // Large bodies wait for `100 Continue`: a refusal (too large, no token) comes before any byte is sent.
      const waitContinue = body !== undefined && body.length > CONTINUE_ABOVE;
      if (waitContinue) headers.expect = '100-continue';
      const req = http.request({ ...this.target(), agent: this.agent, path, method, timeout: this.timeoutMs, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          // The agent may answer before the body is all sent (a 413, a refused token): stop sending.
          if (!req.writableFinished) req.destroy();
          settle(() => resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        res.on('error', (err) => settle(() => reject(unavailable(this.where(), err))));
      });
      req.on('timeout', () => req.destroy(new AgentError('AGT_ERR_TIMEOUT', `agent did not answer ${method} ${path} within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!settled && this.notUpYet(err)) {
          settled = true;
          setTimeout(() => this.send(method, path, o).then(resolve, reject), 50);
          return;
        }
        // EPIPE/ECONNRESET while sending: the agent refused and closed; its answer may still arrive.
        if ((err.code === 'EPIPE' || err.code === 'ECONNRESET') && !settled) {
          setTimeout(() => settle(() => reject(unavailable(this.where(), err))), 500);
          return;
        }
        settle(() => reject(err instanceof AgentError ? err : unavailable(this.where(), err)));
      });
      if (body) {
        // Written in slices so a progress bar can follow large uploads.
        const slice = 256 * 1024;
        let off = 0;
        const pump = (): void => {
          while (off < body.length) {
            if (settled || req.destroyed) return;
            const end = Math.min(off + slice, body.length);
            const ok = req.write(body.subarray(off, end));
            off = end;
            o.onProgress?.(off);
            if (!ok) {
              req.once('drain', pump);
              return;
            }
          }
          req.end();
        };
        if (waitContinue) req.once('continue', pump);
        else pump();
      } else req.end();
    });
  }

  private async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const r = await this.send(method, path, o);
    let value: unknown;
    try {
      value = JSON.parse(r.body.toString());
    } catch {
      throw new AgentError('AGT_ERR_PROTOCOL', `agent answered ${r.status} with a non-JSON body`);
    }
    if (r.status >= 400) throw errorFromJSON(asRecord(asRecord(value)?.error) ?? {});
    return value as T;
  }

  status(): Promise<AgentStatus> {
    return this.request('GET', '/v1/status');
  }

  async list(): Promise<readonly NameRecord[]> {
    return (await this.request<{ modules: NameRecord[] }>('GET', '/v1/modules')).modules;
  }

  upload(name: string, bytes: Uint8Array, options: { signature?: string; kind?: 'command' | 'reactor'; onProgress?: (sent: number) => void } = {}): Promise<UploadResult> {
    const headers: Record<string, string> = { 'content-type': 'application/wasm' };
    if (options.signature) headers['x-module-signature'] = options.signature;
    const q = options.kind ? `?kind=${options.kind}` : '';
    return this.request('POST', `/v1/modules/${pathSegment(name)}${q}`, { body: bytes, headers, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  }

  async remove(name: string): Promise<NameRecord> {
    return (await this.request<{ removed: NameRecord }>('DELETE', `/v1/modules/${pathSegment(name)}`)).removed;
  }

  async apps(): Promise<readonly AppView[]> {
    return (await this.request<{ apps: AppView[] }>('GET', '/v1/apps')).apps;
  }

  app(name: string): Promise<AppView> {
    return this.request('GET', `/v1/apps/${pathSegment(name)}`);
  }

  /** Deploys app `name` from a stored module (`module`: name or digest) or from bytes sent with the request. */
  deploy(
    name: string,
    settings: AppSettings & { module?: string },
    options: { bytes?: Uint8Array; signature?: string; onProgress?: (sent: number) => void } = {},
  ): Promise<DeployOutcome> {
    if (options.bytes) {
      const { module: _m, ...rest } = settings;
      const headers: Record<string, string> = { 'content-type': 'application/wasm', 'x-app-spec': JSON.stringify(rest) };
      if (options.signature) headers['x-module-signature'] = options.signature;
      return this.request('PUT', `/v1/apps/${pathSegment(name)}`, { body: options.bytes, headers, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    }
    return this.request('PUT', `/v1/apps/${pathSegment(name)}`, { body: JSON.stringify(settings), headers: { 'content-type': 'application/json' } });
  }

  stop(name: string): Promise<AppView> {
    return this.request('POST', `/v1/apps/${pathSegment(name)}/stop`);
  }

  start(name: string): Promise<AppView> {
    return this.request('POST', `/v1/apps/${pathSegment(name)}/start`);
  }

  async removeApp(name: string): Promise<AppSpec> {
    return (await this.request<{ removed: AppSpec }>('DELETE', `/v1/apps/${pathSegment(name)}`)).removed;
  }

  call(app: string, fn: string, args: ReadonlyArray<number | string | { type: string; value: number | string }>, limits?: { timeMs?: number; gas?: number }): Promise<CallAnswer> {
    return this.request('POST', `/v1/apps/${pathSegment(app)}/call`, {
      body: JSON.stringify({ fn, args, ...(limits ? { limits } : {}) }),
      headers: { 'content-type': 'application/json' },
    });
  }

  async invoke(app: string, stdin: Uint8Array): Promise<InvokeAnswer> {
    const r = await this.send('POST', `/v1/apps/${pathSegment(app)}/invoke`, { body: stdin, headers: { 'content-type': 'application/octet-stream' } });
    if (r.status >= 400) {
      let value: unknown;
      try {
        value = JSON.parse(r.body.toString());
      } catch {
        throw new AgentError('AGT_ERR_PROTOCOL', `agent answered ${r.status} with a non-JSON body`);
      }
      throw errorFromJSON(asRecord(asRecord(value)?.error) ?? {});
    }
    const msg = r.headers['x-exit-message'];
    return {
      stdout: r.body,
      exitCode: Number(r.headers['x-exit-code'] ?? 1),
      reason: String(r.headers['x-exit-reason'] ?? 'exit'),
      ...(typeof msg === 'string' ? { message: decodeURIComponent(msg) } : {}),
    };
  }

  async metrics(): Promise<string> {
    const r = await this.send('GET', '/metrics');
    if (r.status >= 400) throw new AgentError('AGT_ERR_NOT_FOUND', `metrics answered ${r.status}`);
    return r.body.toString();
  }

  reconcile(): Promise<unknown> {
    return this.request('POST', '/v1/reconcile');
  }

  /**
   * Streams log entries (NDJSON). Without follow it resolves when the agent has sent what it holds; with
   * follow it runs until `signal` aborts (resolves) or the agent goes away (rejects).
   */
  logs(query: { app?: string; run?: number; source?: 'agent' | 'app'; tail?: number; follow?: boolean }, onEntry: (e: LogEntry) => void, signal?: AbortSignal): Promise<void> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, k === 'follow' ? (v ? '1' : '0') : String(v));
    const path = `/v1/logs?${q.toString()}`;
    return new Promise<void>((resolve, reject) => {
      const req = http.request({ ...this.target(), path, method: 'GET', headers: this.authHeaders(), ...(query.follow ? {} : { timeout: this.timeoutMs }) }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              reject(errorFromJSON(asRecord(asRecord(JSON.parse(Buffer.concat(chunks).toString()))?.error) ?? {}));
            } catch {
              reject(new AgentError('AGT_ERR_PROTOCOL', `agent answered ${res.statusCode} to GET /v1/logs`));
            }
          });
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() === '') continue;
            try {
              onEntry(JSON.parse(line) as LogEntry);
            } catch {
              // a malformed line is skipped, not fatal
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', (err) => reject(unavailable(this.where(), err)));
      });
      signal?.addEventListener('abort', () => {
        req.destroy();
        resolve();
      });
      req.on('timeout', () => req.destroy(new AgentError('AGT_ERR_TIMEOUT', `agent did not answer GET /v1/logs within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => (signal?.aborted ? resolve() : reject(err instanceof AgentError ? err : unavailable(this.where(), err))));
      req.end();
    });
  }

  private wsUrl(path: string): string {
    return 'socketPath' in this.address ? `ws+unix://${this.address.socketPath}:${path}` : `ws://${this.address.host}:${this.address.port}${path}`;
  }

  private ws: Promise<typeof import('ws')> | undefined;

  /**
   * Loads the WebSocket client `run` needs (most CLI commands never open one), e.g. while an upload waits for
   * the agent, so the run does not wait for it afterwards.
   */
  prepareRun(): void {
    this.ws ??= import('ws');
    this.ws.catch(() => undefined);
  }

  /** Runs over the WebSocket API; output is delivered as it arrives; resolves with the exit. */
  async run(module: string, req: RunRequest, cb: RunCallbacks, options: { signal?: AbortSignal } = {}): Promise<ExitMessage> {
    const { WebSocket } = await (this.ws ??= import('ws'));
    return new Promise<ExitMessage>((resolve, reject) => {
      const ws = new WebSocket(this.wsUrl('/v1/run'), { headers: this.authHeaders() });
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
      };
      options.signal?.addEventListener('abort', () => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'kill' }));
      });
      ws.on('open', () => ws.send(JSON.stringify({ module, ...req })));
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          const body = data.subarray(1);
          if (data[0] === WS_STDOUT) cb.onStdout(body);
          else if (data[0] === WS_STDERR) cb.onStderr(body);
          return;
        }
        let msg: Record<string, unknown> | undefined;
        try {
          msg = asRecord(JSON.parse(data.toString()));
        } catch {
          msg = undefined;
        }
        if (msg?.type === 'error') settle(() => reject(errorFromJSON(asRecord(msg.error) ?? {})));
        else if (msg?.type === 'exit' && typeof msg.exitCode === 'number' && typeof msg.reason === 'string') {
          const { type: _t, ...rest } = msg;
          settle(() => resolve(rest as unknown as ExitMessage));
        }
      });
      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let err: AgentError;
          try {
            err = errorFromJSON(asRecord(asRecord(JSON.parse(Buffer.concat(chunks).toString()))?.error) ?? {});
          } catch {
            err = new AgentError('AGT_ERR_PROTOCOL', `agent refused the WebSocket with ${res.statusCode}`);
          }
          settle(() => reject(err));
        });
      });
      ws.on('error', (e: NodeJS.ErrnoException) => {
        if (!settled && this.notUpYet(e)) {
          settled = true;
          setTimeout(() => this.run(module, req, cb, options).then(resolve, reject), 50);
          return;
        }
        settle(() => reject(unavailable(this.where(), e)));
      });
      ws.on('close', () => settle(() => reject(new AgentError('AGT_ERR_AGENT_UNAVAILABLE', 'agent closed the run before it ended'))));
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
