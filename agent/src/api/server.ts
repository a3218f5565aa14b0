import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import type { AgentCore } from '../core/index.js';
import type { Inbox } from '../inbox/index.js';
import { BearerAuth } from './auth.js';
import type { ApiContext } from './context.js';
import { markBodyUnread, queryOf, sendError } from './http-util.js';
import { Gate, Router } from './router.js';
import { appRoutes } from './routes-apps.js';
import { moduleRoutes } from './routes-modules.js';
import { systemRoutes } from './routes-system.js';
import { callSocket, logSocket, runSocket } from './ws.js';

export interface ApiServerOptions {
  readonly core: AgentCore;
  readonly logger: Logger;
  readonly socketPath: string;
  /** File mode of the socket: who may talk to the agent (default 0660). */
  readonly socketMode?: number;
  /** Group owning the socket (name or gid). */
  readonly socketGroup?: string | number;
  /** Optional TCP listener; every request on it needs the bearer token. */
  readonly tcp?: { readonly host: string; readonly port: number; readonly token: string };
  readonly maxJsonBytes?: number;
  readonly maxInvokeBytes?: number;
  readonly maxConcurrentUploads?: number;
  readonly requestTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly inbox?: Inbox;
}

const WS_PATHS = new Set(['/v1/run', '/v1/calls', '/v1/logs']);

/**
 * The agent's HTTP + WebSocket API (docs/api.md), on a Unix socket (mode 0660: the file system decides who may
 * talk) and optionally on TCP, where every request, upgrades included, must carry the bearer token.
 * Routes live in routes-*.ts; WebSocket endpoints in ws.ts.
 */
export class ApiServer {
  private readonly o: ApiServerOptions;
  private readonly ctx: ApiContext;
  private readonly router: Router;
  private readonly unix: http.Server;
  private tcp: http.Server | undefined;
  private readonly auth: BearerAuth | undefined;
  /** Created on the first upgrade: an agent nobody opens a WebSocket to does not load `ws`. */
  private wss: WebSocketServer | undefined;

  constructor(options: ApiServerOptions) {
    this.o = options;
    this.ctx = {
      core: options.core,
      logger: options.logger,
      maxJsonBytes: options.maxJsonBytes ?? 1024 * 1024,
      maxInvokeBytes: options.maxInvokeBytes ?? 192 * 1024,
      uploads: new Gate(options.maxConcurrentUploads ?? 4),
      ...(options.inbox ? { inbox: options.inbox } : {}),
    };
    this.router = new Router([...systemRoutes(this.ctx), ...moduleRoutes(this.ctx), ...appRoutes(this.ctx)]);
    this.unix = this.makeServer(false);
    if (options.tcp) this.auth = new BearerAuth(options.tcp.token);
  }

  private makeServer(authenticated: boolean): http.Server {
    const server = http.createServer((req, res) => void this.dispatch(req, res, authenticated, false));
    // Expect: 100-continue (what the client sends with large bodies): the token and the declared size are
    // checked before the client sends a byte of the body; a refusal costs the client nothing to transmit.
    server.on('checkContinue', (req, res) => void this.dispatch(req, res, authenticated, true));
    server.requestTimeout = this.o.requestTimeoutMs ?? 10 * 60_000;
    server.headersTimeout = this.o.headersTimeoutMs ?? 30_000;
    server.maxConnections = this.o.maxConnections ?? 1024;
    server.keepAliveTimeout = 65_000;
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head, authenticated));
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.o.logger.debug({ code: err.code, err: err.message }, 'client error');
      if (!socket.writable || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
      const body = JSON.stringify({ error: { code: status === 408 ? 'AGT_ERR_TIMEOUT' : status === 431 ? 'AGT_ERR_TOO_LARGE' : 'AGT_ERR_BAD_REQUEST', message: `${text}: ${err.message}`, details: {} } });
      socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    return server;
  }

  async listen(): Promise<void> {
    fs.rmSync(this.o.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.unix.once('error', reject);
      this.unix.listen(this.o.socketPath, () => resolve());
    });
    fs.chmodSync(this.o.socketPath, this.o.socketMode ?? 0o660);
    if (this.o.socketGroup !== undefined) fs.chownSync(this.o.socketPath, -1, resolveGid(this.o.socketGroup));
    this.o.logger.info({ socket: this.o.socketPath, mode: (this.o.socketMode ?? 0o660).toString(8) }, 'API listening');
    if (this.o.tcp) {
      const tcp = this.makeServer(true);
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(this.o.tcp!.port, this.o.tcp!.host, () => resolve());
      });
      this.tcp = tcp;
      this.o.logger.info({ host: this.o.tcp.host, port: this.tcpPort }, 'API listening on TCP (bearer token required)');
    }
  }

  /** The TCP port actually bound (useful with port 0). */
  get tcpPort(): number | undefined {
    return (this.tcp?.address() as AddressInfo | null)?.port;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, authenticated: boolean, expectsContinue: boolean): Promise<void> {
    const pathname = (req.url ?? '/').split('?')[0]!;
    let label = 'unmatched';
    let continued = false;
    res.once('finish', () => this.o.core.metrics?.requests.inc({ route: `${req.method} ${label}`, status: String(res.statusCode) }));
    try {
      if (authenticated) this.auth!.check(req);
      const { route, params } = this.router.match(req.method ?? 'GET', pathname);
      label = route.path;
      if (expectsContinue) {
        const limit = route.bodyLimit?.(req) ?? this.ctx.maxJsonBytes;
        const declared = Number(req.headers['content-length'] ?? 0);
        if (declared > limit) {
          markBodyUnread(req);
          throw new AgentError('AGT_ERR_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, { limit, field: 'body' });
        }
        res.writeContinue();
        continued = true;
      }
      await route.handler(req, res, params);
    } catch (err) {
      // Refused before `100 Continue`: the client never sent the body, so the connection cannot be reused.
      if (expectsContinue && !continued) markBodyUnread(req);
      const e = toAgentError(err);
      if (e.code === 'AGT_ERR_INTERNAL' || e.code === 'AGT_ERR_STORE_IO') this.o.logger.error({ method: req.method, path: pathname, code: e.code, err: e.message }, 'request failed');
      else this.o.logger.debug({ method: req.method, path: pathname, code: e.code, err: e.message }, 'request refused');
      sendError(req, res, e);
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, authenticated: boolean): void {
    const pathname = (req.url ?? '/').split('?')[0]!;
    try {
      if (authenticated) this.auth!.check(req);
      if (!WS_PATHS.has(pathname)) throw new AgentError('AGT_ERR_NOT_FOUND', `no WebSocket endpoint ${pathname}`);
    } catch (err) {
      const e = toAgentError(err);
      const body = JSON.stringify({ error: e.toJSON() });
      socket.end(`HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    void this.wsServer().then(
      (wss) =>
        wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
          if (pathname === '/v1/run') runSocket(this.ctx, ws);
          else if (pathname === '/v1/calls') callSocket(this.ctx, ws);
          else logSocket(this.ctx, ws, queryOf(req));
        }),
      () => socket.destroy(),
    );
  }

  private async wsServer(): Promise<WebSocketServer> {
    if (!this.wss) {
      const { WebSocketServer: Server } = await import('ws');
      this.wss ??= new Server({ noServer: true, maxPayload: this.ctx.maxJsonBytes });
    }
    return this.wss;
  }

  routes(): ReadonlyArray<{ method: string; path: string }> {
    return this.router.list();
  }

  async close(): Promise<void> {
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    const closeOne = (s: http.Server | undefined): Promise<void> =>
      s
        ? new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          })
        : Promise.resolve();
    await Promise.all([closeOne(this.unix), closeOne(this.tcp)]);
    fs.rmSync(this.o.socketPath, { force: true });
  }
}

function resolveGid(group: string | number): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new AgentError('AGT_ERR_CONFIG_INVALID', `api.socketGroup: no group named ${group} in /etc/group`, { field: 'api.socketGroup' });
  return gid;
}
