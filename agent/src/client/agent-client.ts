import http from 'node:http';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { AgentError, errorFromJSON } from '../../../runner-proto/src/errors/index.js';
import type { ExitMessage } from '../../../runner-proto/src/protocol/index.js';
import { WS_STDERR, WS_STDOUT } from '../api/index.js';
import type { AgentStatus, RunRequest, UploadResult } from '../core/index.js';
import type { NameRecord } from '../store/index.js';

export interface RunCallbacks {
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
}

const exitFrame = z.object({ type: z.literal('exit') }).passthrough();
const errorFrame = z.object({ type: z.literal('error'), error: z.object({ code: z.string(), message: z.string() }).passthrough() });

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
    return this.request('POST', `/v1/modules/${encodeURIComponent(name)}`, bytes, onProgress);
  }

  async remove(name: string): Promise<NameRecord> {
    return (await this.request<{ removed: NameRecord }>('DELETE', `/v1/modules/${encodeURIComponent(name)}`)).removed;
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
        const msg: unknown = JSON.parse(data.toString());
        const err = errorFrame.safeParse(msg);
        if (err.success) settle(() => reject(errorFromJSON(err.data.error)));
        const exit = exitFrame.safeParse(msg);
        if (exit.success) {
          const { type: _t, ...rest } = exit.data;
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
