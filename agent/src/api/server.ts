import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { API_PREFIX, WS_STDERR, WS_STDOUT } from '../api-contract/index.js';
import type { AgentCore } from '../core/index.js';
import { parseJson, readBody, sendError, sendJson } from './http-util.js';
import { runBody, wsClientMessage, wsRunStart } from './schemas.js';


const JSON_LIMIT = 1024 * 1024;

export interface ApiServerOptions {
  readonly core: AgentCore;
  readonly logger: Logger;
  readonly socketPath: string;
  /** File mode of the socket: who may talk to the agent. */
  readonly socketMode?: number;
}

type Route = (req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void>;

/**
 * The agent's HTTP + WebSocket API on a Unix socket:
 *   GET    /v1/status                 runner link, module count, runs
 *   GET    /v1/modules                list of named modules
 *   POST   /v1/modules/NAME           upload (body: the wasm bytes), checked then stored
 *   GET    /v1/modules/NAME           one module's record
 *   DELETE /v1/modules/NAME           remove the name (unreferenced bytes are collected)
 *   POST   /v1/modules/NAME/run       run; body {args, env, limits}; answer: NDJSON output lines then the exit
 *   WS     /v1/run                    run with streamed output: send {module, args, env, limits}, receive
 *                                     binary output frames and a final {"type":"exit"} (docs/api.md)
 */
export class ApiServer {
  private readonly core: AgentCore;
  private readonly logger: Logger;
  private readonly socketPath: string;
  private readonly socketMode: number;
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: Route }>;

  constructor(options: ApiServerOptions) {
    this.core = options.core;
    this.logger = options.logger;
    this.socketPath = options.socketPath;
    this.socketMode = options.socketMode ?? 0o660;
    this.server = http.createServer((req, res) => void this.dispatch(req, res));
    this.server.requestTimeout = 10 * 60_000;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: JSON_LIMIT });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    const name = '([^/]+)';
    this.routes = [
      { method: 'GET', pattern: /^\/v1\/status$/, handler: (_q, r) => this.status(r) },
      { method: 'GET', pattern: /^\/v1\/modules$/, handler: (_q, r) => this.list(r) },
      { method: 'POST', pattern: new RegExp(`^/v1/modules/${name}$`), handler: (q, r, p) => this.upload(q, r, p[0]!) },
      { method: 'GET', pattern: new RegExp(`^/v1/modules/${name}$`), handler: (_q, r, p) => this.get(r, p[0]!) },
      { method: 'DELETE', pattern: new RegExp(`^/v1/modules/${name}$`), handler: (_q, r, p) => this.remove(r, p[0]!) },
      { method: 'POST', pattern: new RegExp(`^/v1/modules/${name}/run$`), handler: (q, r, p) => this.runHttp(q, r, p[0]!) },
    ];
  }

  async listen(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
    fs.chmodSync(this.socketPath, this.socketMode);
    this.logger.info({ socket: this.socketPath }, 'API listening');
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Not `new URL()`: it would resolve `%2E%2E` segments away, hiding a bad name from validation.
    const url = { pathname: (req.url ?? '/').split('?')[0]! };
    try {
      let pathMatched = false;
      for (const route of this.routes) {
        const m = route.pattern.exec(url.pathname);
        if (!m) continue;
        pathMatched = true;
        if (route.method !== req.method) continue;
        await route.handler(req, res, m.slice(1).map(decodeURIComponent));
        return;
      }
      if (pathMatched) throw new AgentError('AGT_ERR_BAD_REQUEST', `method ${req.method} is not allowed on ${url.pathname}`);
      throw new AgentError('AGT_ERR_NOT_FOUND', `no API route ${req.method} ${url.pathname}`);
    } catch (err) {
      const e = toAgentError(err);
      this.logger.info({ method: req.method, path: url.pathname, code: e.code, msg: e.message }, 'request refused');
      sendError(res, e);
    }
  }

  private async status(res: ServerResponse): Promise<void> {
    sendJson(res, 200, await this.core.status());
  }

  private async list(res: ServerResponse): Promise<void> {
    sendJson(res, 200, { modules: await this.core.list() });
  }

  private async get(res: ServerResponse, name: string): Promise<void> {
    sendJson(res, 200, await this.core.store.resolve(name));
  }

  private async upload(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const bytes = await readBody(req, this.core.maxModuleBytes);
    const r = await this.core.upload(bytes, name);
    sendJson(res, r.created ? 201 : 200, r);
  }

  private async remove(res: ServerResponse, name: string): Promise<void> {
    sendJson(res, 200, { removed: await this.core.remove(name) });
  }

  /** NDJSON: {"stream":"stdout","data":"<base64>"} lines as output arrives, then {"exit":{...}}. */
  private async runHttp(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const body = parseJson(await readBody(req, JSON_LIMIT), runBody, `POST /v1/modules/${name}/run`);
    const line = (v: unknown): void => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify(v)}\n`);
    };
    const handle = await this.core.run(name, body, {
      onStdout: (c) => line({ stream: 'stdout', data: Buffer.from(c).toString('base64') }),
      onStderr: (c) => line({ stream: 'stderr', data: Buffer.from(c).toString('base64') }),
    });
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.on('close', () => {
      if (!res.writableFinished) void handle.kill(0);
    });
    try {
      line({ exit: await handle.exit });
    } catch (err) {
      line({ error: toAgentError(err).toJSON() });
    }
    res.end();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname !== `${API_PREFIX}/run`) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.runWs(ws));
  }

  private runWs(ws: WebSocket): void {
    const fail = (err: unknown): void => {
      const e = toAgentError(err);
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', error: e.toJSON() }));
      ws.close(1000);
    };
    // A client that never says what to run is dropped.
    const idle = setTimeout(() => fail(new AgentError('AGT_ERR_TIMEOUT', 'no run request within 30 s')), 30_000);
    ws.once('message', (data, isBinary) => {
      clearTimeout(idle);
      void (async () => {
        if (isBinary) throw new AgentError('AGT_ERR_BAD_REQUEST', 'the first WebSocket message must be a JSON run request');
        const start = parseJson(Buffer.from(data as Buffer), wsRunStart, 'WS /v1/run');
        const send = (tag: number, c: Uint8Array): void => {
          if (ws.readyState !== ws.OPEN) return;
          const msg = Buffer.allocUnsafe(c.length + 1);
          msg[0] = tag;
          msg.set(c, 1);
          ws.send(msg);
        };
        const handle = await this.core.run(start.module, start, {
          onStdout: (c) => send(WS_STDOUT, c),
          onStderr: (c) => send(WS_STDERR, c),
        });
        ws.send(JSON.stringify({ type: 'started', runId: handle.runId }));
        ws.on('message', (m, bin) => {
          try {
            if (bin) throw new AgentError('AGT_ERR_BAD_REQUEST', 'binary messages are not accepted after the run request');
            const msg = parseJson(Buffer.from(m as Buffer), wsClientMessage, 'WS /v1/run');
            if (msg.type === 'kill') void handle.kill(msg.graceMs ?? 0);
          } catch (err) {
            fail(err);
          }
        });
        ws.on('close', () => void handle.kill(0));
        const exit = await handle.exit;
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'exit', ...exit }));
        ws.close(1000);
      })().catch(fail);
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    fs.rmSync(this.socketPath, { force: true });
  }
}
