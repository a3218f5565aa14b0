import http from 'node:http';
import { WebSocket } from 'ws';
import { AgentError, errorFromJSON } from '../../../runner-proto/src/errors/index.js';
import type { ExitMessage } from '../../../runner-proto/src/protocol/index.js';
import { WS_STDERR, WS_STDOUT } from '../api-contract/index.js';
import type { AgentStatus, RunRequest, UploadResult } from '../core/index.js';
import type { NameRecord } from '../store/index.js';

export interface RunCallbacks {
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
}

/** The CLI starts often: it checks the two message shapes by hand instead of loading zod (~200 ms). */
function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Dots are escaped too, so a name like `..` reaches the agent (which refuses it) instead of being resolved away. */
function pathSegment(name: string): string {
  return encodeURIComponent(name).replace(/\./g, '%2E');
}

/** Talks to the agent's API over its Unix socket; every call is bounded by a timeout. */
export class AgentClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private request<T>(method: string, path: string, body?: Uint8Array, onProgress?: (sent: number) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, path, method, timeout: this.timeoutMs, headers: body ? { 'content-type': 'application/wasm', 'content-length': body.length } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let value: unknown;
            try {
              value = JSON.parse(text);
            } catch {
              reject(new AgentError('AGT_ERR_PROTOCOL', `agent answered ${res.statusCode} with a non-JSON body`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = (value as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error ?? {};
              reject(errorFromJSON(err));
            } else resolve(value as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new AgentError('AGT_ERR_TIMEOUT', `agent did not answer ${method} ${path} within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof AgentError) reject(err);
        else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') {
          reject(new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `cannot reach the agent at ${this.socketPath} (${err.code}); is wasmedge-agent running?`, { path: this.socketPath }));
        } else reject(new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `agent connection failed: ${err.message}`));
      });
      if (body) {
        // Written in slices so a progress bar can follow large uploads.
        const slice = 256 * 1024;
        let off = 0;
        const pump = (): void => {
          while (off < body.length) {
            const end = Math.min(off + slice, body.length);
            const ok = req.write(body.subarray(off, end));
            off = end;
            onProgress?.(off);
            if (!ok) {
              req.once('drain', pump);
              return;
            }
          }
          req.end();
        };
        pump();
      } else req.end();
    });
  }

  status(): Promise<AgentStatus> {
    return this.request('GET', '/v1/status');
  }

  async list(): Promise<readonly NameRecord[]> {
    return (await this.request<{ modules: NameRecord[] }>('GET', '/v1/modules')).modules;
  }

  upload(name: string, bytes: Uint8Array, onProgress?: (sent: number) => void): Promise<UploadResult> {
    return this.request('POST', `/v1/modules/${pathSegment(name)}`, bytes, onProgress);
  }

  async remove(name: string): Promise<NameRecord> {
    return (await this.request<{ removed: NameRecord }>('DELETE', `/v1/modules/${pathSegment(name)}`)).removed;
  }

  /** Runs over the WebSocket API; output is delivered as it arrives; resolves with the exit. */
  run(module: string, req: RunRequest, cb: RunCallbacks, options: { signal?: AbortSignal } = {}): Promise<ExitMessage> {
    return new Promise<ExitMessage>((resolve, reject) => {
      const ws = new WebSocket(`ws+unix://${this.socketPath}:/v1/run`);
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
      ws.on('error', (e: NodeJS.ErrnoException) => {
        settle(() =>
          reject(
            e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
              ? new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `cannot reach the agent at ${this.socketPath} (${e.code}); is wasmedge-agent running?`)
              : new AgentError('AGT_ERR_AGENT_UNAVAILABLE', `agent WebSocket failed: ${e.message}`),
          ),
        );
      });
      ws.on('close', () => settle(() => reject(new AgentError('AGT_ERR_AGENT_UNAVAILABLE', 'agent closed the run before it ended'))));
    });
  }
}
