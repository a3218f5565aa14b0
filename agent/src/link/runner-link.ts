import { randomInt } from 'node:crypto';
import {
  Endpoint,
  PEER_STALE_MS,
  attachRing,
  connectStream,
  openSerial,
  peerState,
  type RingLink,
} from '../../../runner-proto/src/channel/index.js';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import { FLAG_BODY_CRC, type Frame } from '../../../runner-proto/src/frame/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import {
  CAPABILITIES,
  MsgType,
  PROTOCOL_VERSION,
  decodeJson,
  encodeJson,
  appsResultSchema,
  callBatchResultSchema,
  callResultSchema,
  canTravelBinary,
  decodeCallBatchResults,
  deployResultSchema,
  encodeCallBatchRequest,
  exitSchema,
  helloAckSchema,
  invokeResultHeadSchema,
  joinHead,
  splitHead,
  type CallMessage,
  type DeployMessage,
  type DeployResult,
  type ExitMessage,
  type HelloAck,
  type RunMessage,
} from '../../../runner-proto/src/protocol/index.js';
import { Side } from '../../../runner-proto/src/region/index.js';
import type { NotifyMode } from '../../../runner-proto/src/notify/index.js';
import { z } from 'zod';

export type LinkConfig =
  | { readonly kind: 'ring'; readonly path: string; readonly notify?: NotifyMode }
  | { readonly kind: 'stream'; readonly path: string }
  | { readonly kind: 'serial'; readonly path: string };

export interface RunOutput {
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
}

export interface RunHandle {
  readonly runId: number;
  readonly exit: Promise<ExitMessage>;
  kill(graceMs?: number): Promise<void>;
}

/** What a connection listener learns: the runner's identity, and whether it is the runner seen before. */
export interface ConnectedInfo {
  readonly runnerEpoch: number;
  /** Modules the runner holds right now (0 after a runner restart). */
  readonly modules: number;
  /** 1 for the first connection of this agent process. */
  readonly connects: number;
  /** The runner's epoch differs from the one seen on the previous connection: it restarted. */
  readonly runnerRestarted: boolean;
}

/** Channel counters summed over every connection this link has made (a reconnect does not reset them). */
export interface ChannelCounters {
  readonly framesIn: number;
  readonly framesOut: number;
  readonly faults: number;
  /** Doorbell kicks sent to the runner (ring transport only; suppressed kicks are not counted). */
  readonly kicks: number;
}

export interface LinkStatus {
  readonly connected: boolean;
  readonly transport: LinkConfig['kind'];
  readonly path: string;
  readonly runnerEpoch?: number;
  readonly protocolVersion?: number;
  readonly engines?: readonly string[];
  readonly connects: number;
  readonly since?: string;
}

interface QueuedCall {
  readonly msg: CallMessage;
  resolve(r: CallResult): void;
  reject(e: unknown): void;
  readonly timeoutMs: number;
}

interface ActiveRun {
  readonly output: RunOutput;
  resolve(e: ExitMessage): void;
  reject(e: AgentError): void;
  timer: NodeJS.Timeout | undefined;
}

const CHUNK_SIZE = 64 * 1024;
/**
 * Largest module deployModule() sends without asking MODULE_HAVE first: below this a needless transfer (the
 * runner had it after all) costs less than the round trip the question costs every time.
 */
const PIPELINE_MAX_BYTES = 1024 * 1024;
/** Chunk size of a pipelined transfer (bounded by the transport's maxBody): fewer frames, fewer wake-ups. */
const PIPELINE_CHUNK_SIZE = 256 * 1024;
/** Calls per CALL_BATCH frame (the schema allows up to 1024). */
const MAX_BATCH = 256;
type CallResult = z.infer<typeof callResultSchema>;
/** The runner bumps its heartbeat every HEARTBEAT_MS (100 ms); three missed beats during HELLO mean nobody is there. */
const HELLO_STALE_MS = 300;
const okSchema = z.record(z.string(), z.unknown());
const haveSchema = z.object({ have: z.boolean() });

/**
 * The agent's side of the channel: connects (and reconnects) to the runner, says HELLO, moves modules by
 * digest (only when the runner lacks them) and drives runs, delivering their output as it arrives.
 */
export class RunnerLink {
  private readonly config: LinkConfig;
  private readonly logger: Logger;
  private readonly epoch = randomInt(1, 0x7fffffff);
  private endpoint: Endpoint | undefined;
  private ring: RingLink | undefined;
  private ack: HelloAck | undefined;
  private connecting: Promise<Endpoint> | undefined;
  private readonly runs = new Map<number, ActiveRun>();
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;
  private connects = 0;
  private connectedAt: Date | undefined;
  /**
   * Module transfers under way, by digest. `pipelinedOn`: the connection a pipelined one (BEGIN, chunks and END
   * already sent back to back) uses, which a DEPLOY may follow at once.
   */
  private readonly transfers = new Map<string, { readonly done: Promise<void>; readonly pipelinedOn?: Endpoint }>();
  /** Digests the runner is known to hold on the current connection; cleared when the link drops. */
  private readonly held = new Set<string>();
  private readonly connectedListeners: Array<(info: ConnectedInfo) => void> = [];
  private readonly lostListeners: Array<(why: string) => void> = [];
  private previousRunnerEpoch: number | undefined;
  /** Counters of connections already closed; the live transport's are added on read. */
  private countersBase: ChannelCounters = { framesIn: 0, framesOut: 0, faults: 0, kicks: 0 };

  constructor(config: LinkConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
  }

  /**
   * Called after every successful HELLO (first connection and each reconnection), before any queued request
   * runs on the new link. Listeners must not throw; what they start is their own business (the reconciler
   * re-converges the runner from here).
   */
  onConnected(listener: (info: ConnectedInfo) => void): () => void {
    this.connectedListeners.push(listener);
    return () => {
      const i = this.connectedListeners.indexOf(listener);
      if (i >= 0) this.connectedListeners.splice(i, 1);
    };
  }

  /** Called when a live link is lost (runner gone, restarted, or the transport failed). */
  onLost(listener: (why: string) => void): () => void {
    this.lostListeners.push(listener);
    return () => {
      const i = this.lostListeners.indexOf(listener);
      if (i >= 0) this.lostListeners.splice(i, 1);
    };
  }

  /** Connects now and keeps the link up in the background, reconnecting with back-off; never throws. */
  start(): void {
    this.scheduleReconnect(0);
    this.watchdog = setInterval(() => this.checkPeer(), 100);
    this.watchdog.unref();
  }

  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  private scheduleReconnect(delayMs: number): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed || (this.endpoint && !this.endpoint.closed)) return;
      this.connected(5_000).then(
        () => {
          this.backoffMs = 100;
        },
        (err: unknown) => {
          this.logger.debug({ err: toAgentError(err).message }, 'runner not reachable yet');
          // Capped low: a restarted runner must be found again well within a second of being up.
          this.backoffMs = Math.min(this.backoffMs * 2, 250);
          this.scheduleReconnect(this.backoffMs);
        },
      );
    }, delayMs);
    this.reconnectTimer.unref();
  }

  /** Returns a live endpoint, connecting if needed, bounded by timeoutMs. */
  connected(timeoutMs = 10_000): Promise<Endpoint> {
    if (this.closed) return Promise.reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', 'agent is shutting down'));
    if (this.endpoint && !this.endpoint.closed) return Promise.resolve(this.endpoint);
    if (!this.connecting) {
      this.connecting = this.connect(timeoutMs).finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connect(timeoutMs: number): Promise<Endpoint> {
    let ep: Endpoint;
    if (this.config.kind === 'ring') {
      // The agent beats from its event loop: a thread would cost a second isolate (8 MiB of the agent's 80 MiB
      // idle budget, measured). The loop stays short enough: the ring's receive loop yields every 10 ms however
      // slow the output listeners, and nothing else the agent does synchronously comes near PEER_STALE_MS.
      const ring = await attachRing({ path: this.config.path, timeoutMs, logger: this.logger, notify: this.config.notify });
      this.ring = ring;
      ep = new Endpoint({ transport: ring.transport, role: 'agent', logger: this.logger });
    } else if (this.config.kind === 'serial') {
      ep = new Endpoint({ transport: await openSerial(this.config.path, timeoutMs), role: 'agent', logger: this.logger });
    } else {
      ep = new Endpoint({ transport: await connectStream(this.config.path, timeoutMs), role: 'agent', logger: this.logger });
    }
    ep.on(MsgType.STDOUT, (f) => this.runs.get(f.corr)?.output.onStdout(f.body))
      .on(MsgType.STDERR, (f) => this.runs.get(f.corr)?.output.onStderr(f.body))
      .on(MsgType.EXIT, (f) => this.onExit(f));
    ep.onClose((why) => this.dropped(ep, why));
    ep.start();
    const watch = this.ring ? this.watchDuringHello(ep, this.ring) : undefined;
    try {
      const ack = await ep.requestJson(
        MsgType.HELLO,
        { versions: [PROTOCOL_VERSION], role: 'agent', epoch: this.epoch, capabilities: [...CAPABILITIES], maxBody: ep.transport.maxBody, software: 'wasmedge-agent' },
        helloAckSchema,
        { timeoutMs },
      );
      this.ack = ack;
    } catch (err) {
      await ep.close('hello failed');
      await this.ring?.close();
      this.ring = undefined;
      throw err;
    } finally {
      if (watch) clearInterval(watch);
    }
    this.endpoint = ep;
    this.binaryCallsOn = this.ack.capabilities.includes('call-batch-bin') ? ep : undefined;
    if (this.ring) this.runnerRegionEpoch = peerState(this.ring.region, Side.Runner).epoch;
    this.connects++;
    this.connectedAt = new Date();
    this.logger.info({ transport: this.config.kind, path: this.config.path, runnerEpoch: this.ack.epoch, version: this.ack.version }, 'connected to runner');
    const info: ConnectedInfo = {
      runnerEpoch: this.ack.epoch,
      modules: this.ack.modules,
      connects: this.connects,
      runnerRestarted: this.previousRunnerEpoch !== undefined && this.previousRunnerEpoch !== this.ack.epoch,
    };
    this.previousRunnerEpoch = this.ack.epoch;
    for (const l of [...this.connectedListeners]) {
      try {
        l(info);
      } catch (err) {
        this.logger.error({ err: toAgentError(err).message }, 'connection listener failed');
      }
    }
    return ep;
  }

  /**
   * A region left behind by a killed runner still has a valid header, so attaching succeeds and HELLO would
   * wait its whole timeout for nobody. While HELLO is outstanding, give up at once when the runner side
   * re-initialises the region (a new runner: new epoch) or its heartbeat does not move (nobody home).
   */
  private watchDuringHello(ep: Endpoint, ring: RingLink): NodeJS.Timeout {
    const first = peerState(ring.region, Side.Runner);
    const startedAt = performance.now();
    let beat = { value: first.heartbeat, at: startedAt };
    const t = setInterval(() => {
      const now = performance.now();
      const peer = peerState(ring.region, Side.Runner);
      if (peer.heartbeat !== beat.value) beat = { value: peer.heartbeat, at: now };
      const why =
        peer.epoch !== first.epoch ? 'runner re-initialised the region during HELLO'
        : now - beat.at > HELLO_STALE_MS ? 'runner heartbeat not moving during HELLO'
        : !peer.attached ? 'runner side of the region is not attached'
        : undefined;
      if (why) {
        clearInterval(t);
        void ep.close(why);
      }
    }, 25);
    t.unref();
    return t;
  }

  private onExit(f: Frame): void {
    const run = this.runs.get(f.corr);
    if (!run) return;
    this.runs.delete(f.corr);
    if (run.timer) clearTimeout(run.timer);
    try {
      run.resolve(decodeJson(f.type, f.body, exitSchema));
    } catch (err) {
      run.reject(toAgentError(err, 'AGT_ERR_PROTOCOL'));
    }
  }

  /** Ring liveness: a restarted runner shows a new epoch; a dead one stops its heartbeat. */
  private lastBeat = { value: -1, at: 0 };
  private runnerRegionEpoch = 0;
  private checkPeer(): void {
    if (!this.ring || !this.endpoint || this.endpoint.closed || !this.ack) return;
    const peer = peerState(this.ring.region, Side.Runner);
    const now = performance.now();
    if (peer.heartbeat !== this.lastBeat.value) this.lastBeat = { value: peer.heartbeat, at: now };
    const stale = this.lastBeat.at !== 0 && now - this.lastBeat.at > PEER_STALE_MS;
    const restarted = peer.epoch !== this.runnerRegionEpoch;
    if (stale || restarted || !peer.attached) {
      this.logger.warn({ stale, restarted, attached: peer.attached }, 'runner gone or restarted; reconnecting');
      this.lostAt = now;
      void this.endpoint.close(restarted ? 'runner restarted' : 'runner heartbeat lost');
    }
  }

  /** When the link was last seen to fail (performance.now()), for tests and status. */
  lostAt = 0;

  private dropped(ep: Endpoint, why: string): void {
    if (this.endpoint !== ep) return;
    this.countersBase = this.addLive(this.countersBase, ep, this.ring);
    this.endpoint = undefined;
    this.ack = undefined;
    this.lastBeat = { value: -1, at: 0 };
    const ring = this.ring;
    this.ring = undefined;
    void ring?.close();
    for (const [id, run] of this.runs) {
      if (run.timer) clearTimeout(run.timer);
      run.reject(new AgentError('AGT_ERR_RUNNER_UNAVAILABLE', `runner link lost during run ${id}: ${why}`));
    }
    this.runs.clear();
    this.transfers.clear();
    this.held.clear();
    if (!this.closed) {
      this.logger.warn({ why }, 'runner link lost');
      for (const l of [...this.lostListeners]) {
        try {
          l(why);
        } catch (err) {
          this.logger.error({ err: toAgentError(err).message }, 'link-lost listener failed');
        }
      }
      this.scheduleReconnect(10);
    }
  }

  private addLive(base: ChannelCounters, ep: Endpoint | undefined, ring: RingLink | undefined): ChannelCounters {
    const t = ep?.transport as { framesIn?: number; framesOut?: number; faults?: number } | undefined;
    return {
      framesIn: base.framesIn + (t?.framesIn ?? 0),
      framesOut: base.framesOut + (t?.framesOut ?? 0),
      faults: base.faults + (t?.faults ?? 0),
      kicks: base.kicks + (ring?.transport.tx.kicks ?? 0),
    };
  }

  /** Frames, faults and kicks over the life of this link, for metrics. */
  counters(): ChannelCounters {
    const live = this.endpoint && !this.endpoint.closed ? this.endpoint : undefined;
    return this.addLive(this.countersBase, live, live ? this.ring : undefined);
  }

  /** Requests waiting for an answer on the live link. */
  get inFlight(): number {
    return this.endpoint?.inFlight ?? 0;
  }

  /**
   * Makes sure the runner holds `digest`; sends the bytes only if it does not. A transfer cut by a lost link
   * (runner restarted, ring reset) is retried on the new link until `deadlineMs` runs out.
   */
  async ensureModule(digest: string, load: () => Promise<Uint8Array>, deadlineMs = 60_000): Promise<{ sent: boolean; attempts: number }> {
    const deadline = performance.now() + deadlineMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return { ...(await this.ensureOnce(digest, load)), attempts: attempt };
      } catch (err) {
        const e = toAgentError(err);
        // A digest mismatch at the runner means bytes were damaged in transit (chunks carry no CRC; the store
        // verified them on read): sending again is the cure.
        const retryable =
          e.code === 'AGT_ERR_RUNNER_UNAVAILABLE' || e.code === 'AGT_ERR_TIMEOUT' || e.code === 'AGT_ERR_PROTOCOL' || (e.code === 'AGT_ERR_DIGEST_MISMATCH' && attempt < 3);
        if (!retryable || this.closed || performance.now() > deadline) throw e;
        this.logger.warn({ digest, attempt, err: e.message }, 'module transfer interrupted; retrying');
        await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 1000)));
      }
    }
  }

  private async ensureOnce(digest: string, load: () => Promise<Uint8Array>): Promise<{ sent: boolean }> {
    const ep = await this.connected();
    // Known to be there on this connection: no round trip. (The runner only forgets a module when told to;
    // should that change, forgetHeld() after a NOT_FOUND puts the question back on the wire.)
    if (this.held.has(digest)) return { sent: false };
    const have = await ep.requestJson(MsgType.MODULE_HAVE, { digest }, haveSchema);
    if (have.have) {
      if (this.endpoint === ep) this.held.add(digest);
      return { sent: false };
    }
    // Concurrent runs of the same new module share one transfer.
    let t = this.transfers.get(digest)?.done;
    if (!t) {
      t = (async () => this.sendModule(ep, digest, await load()))().finally(() => this.transfers.delete(digest));
      this.transfers.set(digest, { done: t });
    }
    await t;
    if (this.endpoint === ep) this.held.add(digest);
    return { sent: true };
  }

  /** Forget that the runner holds `digest` (it answered NOT_FOUND): the next ensureModule asks again. */
  forgetHeld(digest: string): void {
    this.held.delete(digest);
  }

  private async sendModule(ep: Endpoint, digest: string, bytes: Uint8Array): Promise<void> {
    const corr = ep.allocCorr();
    const chunk = Math.min(CHUNK_SIZE, ep.transport.maxBody);
    await ep.requestJson(MsgType.MODULE_BEGIN, { digest, size: bytes.length, chunkSize: chunk }, okSchema, { corr });
    for (let off = 0; off < bytes.length; off += chunk) {
      // No per-chunk CRC: the whole module is verified against its sha256 on arrival.
      await ep.send(MsgType.MODULE_CHUNK, corr, bytes.subarray(off, Math.min(off + chunk, bytes.length)), 0);
    }
    await ep.requestJson(MsgType.MODULE_END, { digest }, okSchema, { corr, timeoutMs: 60_000 });
    this.logger.info({ digest, size: bytes.length }, 'module sent to runner');
  }

  /** Starts a run; output is delivered through `output` until `exit` settles. */
  async run(req: RunMessage, output: RunOutput, options: { timeoutMs?: number; onRunId?: (runId: number) => void } = {}): Promise<RunHandle> {
    const ep = await this.connected();
    const runId = ep.allocCorr();
    // Output may arrive before the runner's "started" answer: whoever labels it needs the id first.
    options.onRunId?.(runId);
    let resolve!: (e: ExitMessage) => void;
    let reject!: (e: AgentError) => void;
    const exit = new Promise<ExitMessage>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const active: ActiveRun = { output, resolve, reject, timer: undefined };
    if (options.timeoutMs) {
      active.timer = setTimeout(() => {
        this.runs.delete(runId);
        reject(new AgentError('AGT_ERR_TIMEOUT', `run did not end within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
    }
    this.runs.set(runId, active);
    try {
      await ep.request(MsgType.RUN, encodeJson(req), { corr: runId });
    } catch (err) {
      this.runs.delete(runId);
      if (active.timer) clearTimeout(active.timer);
      throw err;
    }
    return {
      runId,
      exit,
      kill: async (graceMs = 0) => {
        await ep.request(MsgType.KILL, encodeJson({ graceMs }), { corr: runId }).catch(() => undefined);
      },
    };
  }

  /**
   * ensureModule() then deploy(). With the module's bytes in hand (small enough, see PIPELINE_MAX_BYTES) and a
   * runner that speaks `module-pipeline`, the whole transfer and the DEPLOY go out back to back without
   * MODULE_HAVE: one round trip instead of four (the runner holds the DEPLOY until the module has arrived).
   * A pipelined transfer that fails falls back to the ordinary path, with its retries.
   */
  async deployModule(
    msg: DeployMessage,
    load: () => Promise<Uint8Array>,
    options: { readonly bytes?: Uint8Array; readonly deadlineMs?: number } = {},
  ): Promise<{ sent: boolean; result: DeployResult }> {
    // Held on a live connection (the A<->B switch): the DEPLOY leaves within this call, before the caller's
    // next step (app-service then starts the desired-state write, which overlaps the runner's answer).
    const live = this.endpoint;
    if (live !== undefined && !live.closed && !this.closed && this.held.has(msg.digest)) {
      return { sent: false, result: await live.requestJson(MsgType.DEPLOY, msg, deployResultSchema, { timeoutMs: 60_000 }) };
    }
    const ep = await this.connected();
    const bytes = options.bytes;
    // Bytes already on their way (sendAhead), or small enough to send without asking first.
    const under = this.transfers.get(msg.digest);
    let transfer = under?.pipelinedOn === ep ? under.done : undefined;
    if (transfer === undefined && bytes !== undefined) transfer = this.startPipelined(ep, msg.digest, bytes);
    if (transfer !== undefined) {
      // Its answer waits for the runner to hash and compile the bytes (2-3 ms for 150 KiB here): polled for all
      // that time, it costs no futex wake-up on the way back (0.3-0.9 ms measured).
      const size = bytes?.length ?? PIPELINE_MAX_BYTES;
      const deployed = ep.requestJson(MsgType.DEPLOY, msg, deployResultSchema, { timeoutMs: 60_000, answerHotUs: answerHotUsFor(size) });
      const [t, d] = await Promise.allSettled([transfer, deployed]);
      if (t.status === 'fulfilled') {
        if (this.endpoint === ep) this.held.add(msg.digest);
        if (d.status === 'rejected') throw d.reason;
        return { sent: true, result: d.value };
      }
      // The DEPLOY behind a failed transfer failed too (NOT_FOUND); the ordinary path retries what can be.
      this.logger.warn({ digest: msg.digest, err: toAgentError(t.reason).message }, 'pipelined module transfer failed; sending again');
    }
    const { sent } = await this.ensureModule(msg.digest, load, options.deadlineMs);
    return { sent, result: await this.deploy(msg) };
  }

  /**
   * Starts sending a module the runner does not hold yet, ahead of a DEPLOY that deployModule() sends later (the
   * agent checks the bytes meanwhile, so the runner's hash and compile overlap the check). Nothing runs until
   * that DEPLOY; bytes that fail the check are withdrawn with forgetModule(). Returns false when nothing was
   * started (not connected, the runner holds it, a transfer is under way, too big to send unasked).
   */
  sendAhead(digest: string, bytes: Uint8Array): boolean {
    const ep = this.endpoint;
    if (ep === undefined || ep.closed || this.closed) return false;
    const t = this.startPipelined(ep, digest, bytes);
    if (t === undefined) return false;
    t.catch(() => undefined); // settled by whoever awaits it; a failure is seen (and retried) there
    return true;
  }

  /** The pipelined transfer of `bytes` on `ep`, if the runner lacks them and may be sent them unasked. */
  private startPipelined(ep: Endpoint, digest: string, bytes: Uint8Array): Promise<void> | undefined {
    if (
      bytes.length > PIPELINE_MAX_BYTES ||
      this.held.has(digest) ||
      this.transfers.has(digest) ||
      this.endpoint !== ep ||
      this.ack?.capabilities.includes('module-pipeline') !== true
    ) {
      return undefined;
    }
    const done = this.sendPipelined(ep, digest, bytes).finally(() => {
      if (this.transfers.get(digest)?.done === done) this.transfers.delete(digest);
    });
    this.transfers.set(digest, { done, pipelinedOn: ep });
    return done;
  }

  /** Asks the runner whether it holds `digest` (one round trip). */
  async holds(digest: string, timeoutMs = 5000): Promise<boolean> {
    const ep = await this.connected(timeoutMs);
    return (await ep.requestJson(MsgType.MODULE_HAVE, { digest }, haveSchema, { timeoutMs })).have;
  }

  /** Asks the runner to drop a module it holds (sent ahead, then refused by the check). Best effort. */
  async forgetModule(digest: string): Promise<void> {
    await this.transfers.get(digest)?.done.catch(() => undefined);
    this.held.delete(digest);
    const ep = this.endpoint;
    if (ep === undefined || ep.closed) return;
    await ep.requestJson(MsgType.MODULE_FORGET, { digest }, okSchema, { timeoutMs: 5000 }).catch(() => undefined);
  }

  /** BEGIN (ack false), chunks and END without waiting in between; resolves with END's answer. */
  private async sendPipelined(ep: Endpoint, digest: string, bytes: Uint8Array): Promise<void> {
    const corr = ep.allocCorr();
    const chunk = Math.min(PIPELINE_CHUNK_SIZE, ep.transport.maxBody);
    // Frames leave in call order. A refused BEGIN or chunk is answered with an ERROR under this id, which
    // then settles the END request below; a failed send closes the channel, which fails it too.
    void ep.sendJson(MsgType.MODULE_BEGIN, corr, { digest, size: bytes.length, chunkSize: chunk, ack: false }).catch(() => undefined);
    for (let off = 0; off < bytes.length; off += chunk) {
      void ep.send(MsgType.MODULE_CHUNK, corr, bytes.subarray(off, Math.min(off + chunk, bytes.length)), 0).catch(() => undefined);
    }
    await ep.requestJson(MsgType.MODULE_END, { digest }, okSchema, { corr, timeoutMs: 60_000 });
    this.logger.info({ digest, size: bytes.length }, 'module sent to runner');
  }

  /** Deploys (or hot-swaps) an app on the runner; the module must be there (see ensureModule). */
  async deploy(msg: DeployMessage, timeoutMs = 60_000): Promise<DeployResult> {
    const ep = await this.connected();
    return ep.requestJson(MsgType.DEPLOY, msg, deployResultSchema, { timeoutMs });
  }

  async undeploy(app: string): Promise<boolean> {
    const ep = await this.connected();
    return (await ep.requestJson(MsgType.UNDEPLOY, { app }, z.object({ undeployed: z.boolean() }))).undeployed;
  }

  /**
   * Calls a reactor app's function; traps and limits come back as `ok: false`, not as errors. Calls issued in
   * the same turn of the event loop (from any number of connections) travel together in one CALL_BATCH frame
   * (one wake-up of the runner for many calls; CALL_BATCH_BIN when the runner offers it); a lone call goes as a
   * plain CALL.
   */
  call(msg: CallMessage, timeoutMs = 60_000): Promise<CallResult> {
    return new Promise<CallResult>((resolve, reject) => {
      this.callQueue.push({ msg, resolve, reject, timeoutMs });
      // Flushed once this turn of the event loop has read everything it will read: a client's calls from many
      // connections (HTTP requests each arrive in a callback of their own, with microtasks run between them) go as
      // one batch, and the runner wakes once for them. A microtask flush sent most of them one frame each.
      if (this.callQueue.length === 1) setImmediate(() => void this.flushCalls());
    });
  }

  private callQueue: QueuedCall[] = [];
  /** The endpoint whose runner offered `call-batch-bin` in its HelloAck (batches then travel in binary). */
  private binaryCallsOn: Endpoint | undefined;

  private async flushCalls(): Promise<void> {
    const batch = this.callQueue.splice(0, MAX_BATCH);
    if (this.callQueue.length > 0) queueMicrotask(() => void this.flushCalls());
    if (batch.length === 0) return;
    try {
      const ep = await this.connected();
      const timeoutMs = Math.max(...batch.map((c) => c.timeoutMs));
      if (batch.length === 1) {
        batch[0]!.resolve(await ep.requestJson(MsgType.CALL, batch[0]!.msg, callResultSchema, { timeoutMs }));
        return;
      }
      if (this.binaryCallsOn === ep) {
        await this.flushBinary(ep, batch, timeoutMs);
        return;
      }
      const { results } = await ep.requestJson(MsgType.CALL_BATCH, { calls: batch.map((c) => c.msg) }, callBatchResultSchema, { timeoutMs });
      if (results.length !== batch.length) throw new AgentError('AGT_ERR_PROTOCOL', `CALL_BATCH answered ${results.length} results for ${batch.length} calls`);
      batch.forEach((c, i) => c.resolve(results[i]!));
    } catch (err) {
      for (const c of batch) c.reject(err);
    }
  }

  /**
   * A batch as CALL_BATCH_BIN (the runner offered `call-batch-bin`): the same calls and answers as CALL_BATCH
   * without JSON and zod on either side, which were most of a warm call's cost. A call whose JSON form the runner
   * would refuse (or that holds a value binary cannot carry) goes alone as CALL, so it gets the answer it always got.
   */
  private async flushBinary(ep: Endpoint, batch: QueuedCall[], timeoutMs: number): Promise<void> {
    let bin = batch;
    if (!batch.every((c) => canTravelBinary(c.msg))) {
      bin = [];
      for (const c of batch) {
        if (canTravelBinary(c.msg)) bin.push(c);
        else ep.requestJson(MsgType.CALL, c.msg, callResultSchema, { timeoutMs: c.timeoutMs }).then(c.resolve, c.reject);
      }
      if (bin.length === 0) return;
    }
    let results: CallResult[];
    try {
      const f = await ep.request(MsgType.CALL_BATCH_BIN, encodeCallBatchRequest(bin.map((c) => c.msg)), { timeoutMs, flags: FLAG_BODY_CRC });
      results = decodeCallBatchResults(f.body);
      if (results.length !== bin.length) throw new AgentError('AGT_ERR_PROTOCOL', `CALL_BATCH_BIN answered ${results.length} results for ${bin.length} calls`);
    } catch (err) {
      for (const c of bin) c.reject(err);
      return;
    }
    for (let i = 0; i < bin.length; i++) bin[i]!.resolve(results[i]!);
  }

  /** Bytes in, bytes out on a command app: stdin -> stdout, with the exit. */
  async invoke(app: string, stdin: Uint8Array, timeoutMs = 60_000): Promise<{ head: z.infer<typeof invokeResultHeadSchema>; stdout: Uint8Array }> {
    const ep = await this.connected();
    const body = joinHead({ app }, stdin);
    if (body.length > ep.transport.maxBody) {
      throw new AgentError('AGT_ERR_TOO_LARGE', `invoke input of ${stdin.length} bytes exceeds one frame (${ep.transport.maxBody})`);
    }
    const f = await ep.request(MsgType.INVOKE, body, { timeoutMs, flags: FLAG_BODY_CRC });
    const { head, raw } = splitHead(f.type, f.body, invokeResultHeadSchema);
    return { head, stdout: raw };
  }

  async apps(timeoutMs = 10_000): Promise<z.infer<typeof appsResultSchema>['apps']> {
    const ep = await this.connected(timeoutMs);
    return (await ep.requestJson(MsgType.APPS, {}, appsResultSchema, { timeoutMs })).apps;
  }

  async ping(timeoutMs = 2000): Promise<number> {
    const ep = await this.connected(timeoutMs);
    const t0 = performance.now();
    await ep.request(MsgType.PING, encodeJson({}), { timeoutMs });
    return performance.now() - t0;
  }

  status(): LinkStatus {
    const up = this.endpoint !== undefined && !this.endpoint.closed;
    return {
      connected: up,
      transport: this.config.kind,
      path: this.config.path,
      runnerEpoch: up ? this.ack?.epoch : undefined,
      protocolVersion: up ? this.ack?.version : undefined,
      engines: up ? this.ack?.engines : undefined,
      connects: this.connects,
      since: up ? this.connectedAt?.toISOString() : undefined,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await this.endpoint?.close('agent stopping');
    await this.ring?.close();
  }
}

/** How long to poll for the answer to a DEPLOY sent behind its module's bytes: about the runner's hash + compile. */
function answerHotUsFor(bytes: number): number {
  return Math.min(10_000, 2000 + bytes / 50);
}
