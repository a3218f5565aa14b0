import type { z } from 'zod';
import { AgentError, errorFromJSON, toAgentError } from '../errors/index.js';
import type { Frame } from '../frame/index.js';
import { FLAG_BODY_CRC } from '../frame/index.js';
import type { Logger } from '../log/index.js';
import { JSON_FLAGS, MsgType, decodeJson, encodeJson, errorBodySchema, msgTypeName } from '../protocol/index.js';
import type { FrameTransport, TransportFault } from '../transport/index.js';

export type FrameHandler = (frame: Frame, endpoint: Endpoint) => void | Promise<void>;

interface Pending {
  resolve(f: Frame): void;
  reject(e: AgentError): void;
  timer: NodeJS.Timeout;
  type: number;
}

export interface RequestOptions {
  readonly flags?: number;
  readonly timeoutMs?: number;
  readonly corr?: number;
  /**
   * Poll for the answer this long before sleeping until the peer's kick, instead of the transport's default
   * (about 1 ms): for requests known to take longer, such as a DEPLOY behind a module that still compiles.
   */
  readonly answerHotUs?: number;
}

export interface EndpointOptions {
  readonly transport: FrameTransport;
  /** Requests from the agent use even ids, from the runner odd ids, so the two never collide. */
  readonly role: 'agent' | 'runner';
  readonly logger?: Logger;
  readonly defaultTimeoutMs?: number;
}

/**
 * Request/response and event dispatch on top of a frame transport. Every request has a correlation id and a
 * timeout; answers are RESULT (JSON) or ERROR (an AgentError in JSON form). Unanswered requests are bounded by
 * the number of ids in flight the caller creates; every one of them times out.
 */
export class Endpoint {
  readonly transport: FrameTransport;
  readonly role: 'agent' | 'runner';
  private readonly logger: Logger | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<number, FrameHandler>();
  private nextCorr: number;
  private closedFlag = false;
  private readonly closeListeners: Array<(why: string) => void> = [];
  private readonly faultListeners: Array<(f: TransportFault) => void> = [];
  lastFrameAt = performance.now();

  constructor(options: EndpointOptions) {
    this.transport = options.transport;
    this.role = options.role;
    this.logger = options.logger;
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 10_000;
    this.nextCorr = options.role === 'agent' ? 2 : 1;
  }

  start(): void {
    this.transport.start({
      frame: (f) => this.onFrame(f),
      fault: (f) => {
        this.logger?.warn({ fault: f }, 'channel fault: frame rejected');
        for (const l of this.faultListeners) l(f);
      },
      closed: () => this.failAll('transport closed'),
    });
  }

  /** Registers the handler for an incoming frame type (one per type). */
  on(type: number, handler: FrameHandler): this {
    this.handlers.set(type, handler);
    return this;
  }

  onClose(listener: (why: string) => void): void {
    this.closeListeners.push(listener);
  }

  onFault(listener: (f: TransportFault) => void): void {
    this.faultListeners.push(listener);
  }

  allocCorr(): number {
    const c = this.nextCorr;
    this.nextCorr = (this.nextCorr + 2) >>> 0 || (this.role === 'agent' ? 2 : 1);
    return c;
  }

  private onFrame(f: Frame): void {
    this.lastFrameAt = performance.now();
    if (f.type === MsgType.RESULT || f.type === MsgType.ERROR) {
      const p = this.pending.get(f.corr);
      if (!p) {
        this.logger?.debug({ corr: f.corr, type: msgTypeName(f.type) }, 'answer for an unknown or expired request');
        return;
      }
      this.pending.delete(f.corr);
      clearTimeout(p.timer);
      if (this.pending.size === 0) this.transport.expectAnswer?.(false);
      if (f.type === MsgType.RESULT) p.resolve(f);
      else {
        try {
          p.reject(errorFromJSON(decodeJson(f.type, f.body, errorBodySchema)));
        } catch (err) {
          p.reject(toAgentError(err, 'AGT_ERR_PROTOCOL'));
        }
      }
      return;
    }
    const handler = this.handlers.get(f.type);
    if (!handler) {
      this.logger?.warn({ type: msgTypeName(f.type), corr: f.corr }, 'no handler for frame type');
      if (f.type !== MsgType.STDOUT && f.type !== MsgType.STDERR && f.type !== MsgType.EXIT) {
        void this.replyError(f.corr, new AgentError('AGT_ERR_PROTOCOL', `unsupported frame type ${msgTypeName(f.type)}`));
      }
      return;
    }
    try {
      const r = handler(f, this);
      if (r instanceof Promise) {
        r.catch((err: unknown) => this.handlerFailed(f, err));
      }
    } catch (err) {
      this.handlerFailed(f, err);
    }
  }

  private handlerFailed(f: Frame, err: unknown): void {
    const e = toAgentError(err);
    this.logger?.warn({ type: msgTypeName(f.type), corr: f.corr, err: e.toJSON() }, 'request failed');
    void this.replyError(f.corr, e).catch(() => undefined);
  }

  /** Sends a request and waits for its RESULT; ERROR answers reject with the peer's AgentError. */
  request(type: number, body: Uint8Array, options: RequestOptions = {}): Promise<Frame> {
    if (this.closedFlag) return Promise.reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'channel is closed'));
    const corr = options.corr ?? this.allocCorr();
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(corr);
        reject(new AgentError('AGT_ERR_TIMEOUT', `no answer to ${msgTypeName(type)} within ${timeoutMs} ms`, { timeoutMs }));
      }, timeoutMs);
      this.pending.set(corr, { resolve, reject, timer, type });
      const sent = this.transport.send({ type, flags: options.flags ?? JSON_FLAGS, corr, body }, timeoutMs);
      // Poll for the answer rather than sleep until the peer's kick (a second wake-up on the way back).
      this.transport.expectAnswer?.(true, options.answerHotUs);
      sent.catch((err: unknown) => {
        const p = this.pending.get(corr);
        if (!p) return;
        this.pending.delete(corr);
        clearTimeout(p.timer);
        reject(toAgentError(err, 'AGT_ERR_RUNNER_UNAVAILABLE'));
      });
    });
  }

  async requestJson<T extends z.ZodType>(type: number, value: unknown, schema: T, options: Omit<RequestOptions, 'flags'> = {}): Promise<z.infer<T>> {
    const f = await this.request(type, encodeJson(value), options);
    return decodeJson(f.type, f.body, schema);
  }

  /** Sends a frame that expects no answer (events, output, chunks). */
  send(type: number, corr: number, body: Uint8Array, flags = FLAG_BODY_CRC, timeoutMs?: number): Promise<void> {
    if (this.closedFlag) return Promise.reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'channel is closed'));
    return this.transport.send({ type, flags, corr, body }, timeoutMs ?? this.defaultTimeoutMs);
  }

  sendJson(type: number, corr: number, value: unknown): Promise<void> {
    return this.send(type, corr, encodeJson(value), JSON_FLAGS);
  }

  reply(corr: number, value: unknown): Promise<void> {
    return this.sendJson(MsgType.RESULT, corr, value);
  }

  replyError(corr: number, err: AgentError): Promise<void> {
    return this.sendJson(MsgType.ERROR, corr, err.toJSON());
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private failAll(why: string): void {
    for (const [corr, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', `channel closed while waiting for ${msgTypeName(p.type)}: ${why}`));
      this.pending.delete(corr);
    }
    for (const l of this.closeListeners) l(why);
  }

  async close(why = 'closed'): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.failAll(why);
    await this.transport.close();
  }

  get closed(): boolean {
    return this.closedFlag;
  }
}
