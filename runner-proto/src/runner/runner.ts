import { Endpoint } from '../channel/index.js';
import { AgentError, toAgentError } from '../errors/index.js';
import { FLAG_BODY_CRC, type Frame } from '../frame/index.js';
import type { CompiledModule, Engine, RunningInstance } from '../engine/index.js';
import type { Logger } from '../log/index.js';
import {
  CAPABILITIES,
  MsgType,
  PROTOCOL_VERSION,
  callBatchSchema,
  callSchema,
  decodeCallBatchRequest,
  decodeJson,
  encodeCallBatchResults,
  deploySchema,
  helloSchema,
  invokeHeadSchema,
  joinHead,
  splitHead,
  undeploySchema,
  killSchema,
  moduleBeginSchema,
  moduleEndSchema,
  moduleHaveSchema,
  runSchema,
  type HelloAck,
} from '../protocol/index.js';
import { AppManager } from './apps.js';
import { OutputScheduler } from './output.js';
import { ModuleAssembly } from './transfer.js';

/** Command modules kept warm at once; each warm instance costs a worker thread (~9 MB). */
const MAX_WARM_MODULES = 8;
/**
 * A command module received is warmed once arrivals pause this long. Warming the first instance of a new module
 * costs about 4 ms of CPU (V8 compiles its import wrappers with TurboFan, then instantiates), which a stream of
 * uploads and deploys would otherwise pay on the same cores as the next transfer and compile; and of a burst,
 * only the last MAX_WARM_MODULES would stay warm anyway. A run warms its module at once.
 */
const WARM_AFTER_QUIET_MS = 25;
/** How many times warming waits (WARM_AFTER_QUIET_MS each) for transfers in flight: about 1 s. */
const MAX_WARM_DEFERRALS = 40;

export interface RunnerOptions {
  /** Engines by name; `defaultEngine` runs modules that do not ask for one. */
  readonly engines: ReadonlyMap<string, Engine>;
  readonly defaultEngine: string;
  readonly logger: Logger;
  readonly maxModuleBytes?: number;
  readonly maxTransfers?: number;
  /** Command instances kept ready per module received (warm starts); 0 disables. */
  readonly warmPerModule?: number;
  readonly software?: string;
}

interface ActiveRun {
  readonly instance: RunningInstance;
  readonly endpoint: Endpoint;
}

/**
 * The runner's request handling: module cache by digest, chunked transfers, runs with streamed output.
 * One Runner serves successive agent sessions (endpoints); modules survive an agent restart.
 */
export class Runner {
  private readonly engine: Engine;
  private readonly engines: ReadonlyMap<string, Engine>;
  readonly apps: AppManager;
  private readonly logger: Logger;
  private readonly maxModuleBytes: number;
  private readonly maxTransfers: number;
  private readonly warmPerModule: number;
  private readonly software: string;
  private readonly modules = new Map<string, CompiledModule>();
  /** Module bytes by digest: another engine, or a memory-limited variant, may need to compile them again. */
  private readonly bytes = new Map<string, Uint8Array>();
  private readonly transfers = new Map<number, ModuleAssembly>();
  /** Modules between MODULE_END and being held (hash check, compile): a pipelined DEPLOY waits for them. */
  private readonly arriving = new Map<string, Promise<unknown>>();
  private readonly runs = new Map<number, ActiveRun>();
  private readonly epoch = Math.floor(Math.random() * 0x7fffffff);
  private readonly agentEpochs = new Map<Endpoint, number>();
  private readonly output: OutputScheduler;

  constructor(options: RunnerOptions) {
    this.engines = options.engines;
    const engine = options.engines.get(options.defaultEngine);
    if (!engine) throw new AgentError('AGT_ERR_CONFIG_INVALID', `default engine ${options.defaultEngine} is not among ${[...options.engines.keys()].join(', ')}`);
    this.engine = engine;
    this.logger = options.logger;
    this.output = new OutputScheduler(options.logger);
    this.apps = new AppManager({ engines: options.engines, defaultEngine: options.defaultEngine, logger: options.logger });
    this.maxModuleBytes = options.maxModuleBytes ?? 64 * 1024 * 1024;
    this.maxTransfers = options.maxTransfers ?? 8;
    this.warmPerModule = options.warmPerModule ?? 1;
    this.software = options.software ?? 'wasmedge-runner';
  }

  /** Wires an endpoint's frame handlers to this runner. */
  serve(ep: Endpoint): void {
    ep.on(MsgType.HELLO, (f) => this.hello(ep, f))
      .on(MsgType.PING, (f) => ep.reply(f.corr, { epoch: this.epoch, modules: this.modules.size, runs: this.runs.size }))
      .on(MsgType.ECHO, (f) => ep.send(MsgType.RESULT, f.corr, f.body, f.flags))
      .on(MsgType.MODULE_HAVE, (f) => {
        const { digest } = decodeJson(f.type, f.body, moduleHaveSchema);
        return ep.reply(f.corr, { have: this.modules.has(digest) });
      })
      .on(MsgType.MODULE_BEGIN, (f) => this.moduleBegin(ep, f))
      .on(MsgType.MODULE_CHUNK, (f) => this.moduleChunk(ep, f))
      .on(MsgType.MODULE_END, (f) => this.moduleEnd(ep, f))
      .on(MsgType.MODULE_FORGET, (f) => {
        const { digest } = decodeJson(f.type, f.body, moduleHaveSchema);
        this.modules.delete(digest);
        this.bytes.delete(digest);
        for (const e of this.engines.values()) e.forget(digest);
        this.logger.info({ digest }, 'module forgotten');
        return ep.reply(f.corr, { forgotten: true });
      })
      .on(MsgType.RUN, (f) => this.run(ep, f))
      .on(MsgType.DEPLOY, async (f) => {
        const msg = decodeJson(f.type, f.body, deploySchema);
        // Sent right behind its module's MODULE_END (module-pipeline): deploy once the module is held, or
        // answer NOT_FOUND if it failed to arrive.
        await this.arriving.get(msg.digest)?.catch(() => undefined);
        await ep.reply(f.corr, await this.apps.deploy(msg, () => this.bytes.get(msg.digest)));
      })
      .on(MsgType.UNDEPLOY, async (f) => {
        const { app } = decodeJson(f.type, f.body, undeploySchema);
        await ep.reply(f.corr, { undeployed: await this.apps.undeploy(app) });
      })
      .on(MsgType.CALL, async (f) => {
        const c = decodeJson(f.type, f.body, callSchema);
        await ep.reply(f.corr, await this.apps.call(c.app, c.fn, c.args, c.limits));
      })
      .on(MsgType.CALL_BATCH, async (f) => {
        const { calls } = decodeJson(f.type, f.body, callBatchSchema);
        // Each call settles on its own: a missing app fails that call (as an ok:false load result), not the batch.
        await ep.reply(f.corr, { results: await this.apps.callBatch(calls) });
      })
      .on(MsgType.CALL_BATCH_BIN, async (f) => {
        // Same calls and answers as CALL_BATCH, in the binary form (protocol/call-batch-bin.ts).
        const results = await this.apps.callBatch(decodeCallBatchRequest(f.body));
        await ep.send(MsgType.RESULT, f.corr, encodeCallBatchResults(results), FLAG_BODY_CRC);
      })
      .on(MsgType.INVOKE, async (f) => {
        const { head, raw } = splitHead(f.type, f.body, invokeHeadSchema);
        const r = await this.apps.invoke(head.app, raw, head.limits);
        const stderr = Buffer.from(r.stderr).toString('utf8').slice(0, 65536);
        const answer = joinHead({ ...r.result, stderr }, r.stdout);
        if (answer.length > ep.transport.maxBody) {
          throw new AgentError('AGT_ERR_TOO_LARGE', `invoke output of ${r.stdout.length} bytes exceeds one frame (${ep.transport.maxBody}); lower the app's output limit or use run`);
        }
        await ep.send(MsgType.RESULT, f.corr, answer);
      })
      .on(MsgType.APPS, (f) => ep.reply(f.corr, { apps: this.apps.list() }))
      .on(MsgType.KILL, (f) => {
        const { graceMs } = decodeJson(f.type, f.body, killSchema);
        const r = this.runs.get(f.corr);
        r?.instance.kill(graceMs ?? 0);
        return ep.reply(f.corr, { killed: r !== undefined });
      });
    ep.onClose(() => this.endpointGone(ep));
  }

  private hello(ep: Endpoint, f: Frame): Promise<void> {
    const hello = decodeJson(f.type, f.body, helloSchema);
    const version = Math.max(...hello.versions.filter((v) => v <= PROTOCOL_VERSION), 0);
    if (version === 0) {
      throw new AgentError('AGT_ERR_PROTOCOL', `no common protocol version: peer offers ${hello.versions.join(',')}, runner speaks ${PROTOCOL_VERSION}`);
    }
    // A new agent session (another endpoint, or a new epoch on the same ring): what the previous one started
    // has nobody to report to, and its half-sent modules will never be finished.
    if (this.agentEpochs.get(ep) !== hello.epoch) {
      this.sessionLost(ep, 'new agent session');
      for (const other of [...this.agentEpochs.keys()]) if (other !== ep) this.sessionLost(other, 'new agent session');
      this.agentEpochs.set(ep, hello.epoch);
    }
    this.logger.info({ agentEpoch: hello.epoch, version, capabilities: hello.capabilities }, 'agent said hello');
    const ack: HelloAck = {
      version,
      epoch: this.epoch,
      capabilities: [...CAPABILITIES],
      engines: [...this.engines.keys()],
      modules: this.modules.size,
      software: this.software,
    };
    return ep.reply(f.corr, ack);
  }

  private moduleBegin(ep: Endpoint, f: Frame): Promise<void> {
    const begin = decodeJson(f.type, f.body, moduleBeginSchema);
    if (this.transfers.size >= this.maxTransfers && !this.transfers.has(f.corr)) {
      throw new AgentError('AGT_ERR_PROTOCOL', `too many module transfers in flight (max ${this.maxTransfers})`);
    }
    this.transfers.set(f.corr, new ModuleAssembly(begin, this.maxModuleBytes));
    // ack false: the sender did not wait for this answer, and its MODULE_END (same id) awaits the next one.
    return begin.ack === false ? Promise.resolve() : ep.reply(f.corr, { accepted: true });
  }

  private moduleChunk(ep: Endpoint, f: Frame): void {
    const t = this.transfers.get(f.corr);
    if (!t) {
      this.logger.warn({ corr: f.corr }, 'module chunk for an unknown transfer');
      return;
    }
    try {
      t.add(f.body);
    } catch (err) {
      this.transfers.delete(f.corr);
      void ep.replyError(f.corr, toAgentError(err)).catch(() => undefined);
    }
  }

  private async moduleEnd(ep: Endpoint, f: Frame): Promise<void> {
    const { digest } = decodeJson(f.type, f.body, moduleEndSchema);
    const t = this.transfers.get(f.corr);
    this.transfers.delete(f.corr);
    if (!t) throw new AgentError('AGT_ERR_PROTOCOL', `MODULE_END for unknown transfer ${f.corr}`);
    if (t.digest !== digest) throw new AgentError('AGT_ERR_PROTOCOL', `MODULE_END digest ${digest} differs from MODULE_BEGIN ${t.digest}`);
    const bytes = t.finish();
    // Registered before the first await, so a DEPLOY behind this frame sees it.
    const arrival = this.engine.compile(digest, bytes).then((c) => {
      this.modules.set(digest, c);
      this.bytes.set(digest, bytes);
      return c;
    });
    this.arriving.set(digest, arrival);
    let compiled: CompiledModule;
    try {
      compiled = await arrival;
    } finally {
      if (this.arriving.get(digest) === arrival) this.arriving.delete(digest);
    }
    this.logger.info({ digest, size: bytes.length, kind: compiled.kind, ms: Date.now() - t.startedAt }, 'module received');
    await ep.reply(f.corr, { digest, kind: compiled.kind });
    // After the answer, and after the arrivals pause: warming is for a later run.
    if (compiled.kind === 'command') this.warmWhenQuiet(compiled);
  }

  private async run(ep: Endpoint, f: Frame): Promise<void> {
    const req = decodeJson(f.type, f.body, runSchema);
    let module = this.modules.get(req.digest);
    const bytes = this.bytes.get(req.digest);
    if (!module || !bytes) throw new AgentError('AGT_ERR_NOT_FOUND', `runner does not hold module ${req.digest}`, { field: 'digest' });
    const engine = this.apps.engineFor(req.engine);
    if (engine !== this.engine) module = await engine.compile(req.digest, bytes);
    else if (module.kind === 'command') this.keepWarm(module);
    if (this.runs.has(f.corr)) throw new AgentError('AGT_ERR_PROTOCOL', `run id ${f.corr} is already running`);
    const corr = f.corr;
    this.output.open(corr, ep);
    const instance = engine.run(
      module,
      { argv0: req.argv0, args: req.args, env: req.env, limits: req.limits ?? {}, preopens: req.preopens ?? [] },
      { onStdout: (c) => this.output.push(corr, MsgType.STDOUT, c), onStderr: (c) => this.output.push(corr, MsgType.STDERR, c) },
    );
    this.output.setResume(corr, instance.resume?.bind(instance));
    this.runs.set(corr, { instance, endpoint: ep });
    await ep.reply(corr, { started: true });
    const result = await instance.result;
    // EXIT follows the run's last output frame.
    await this.output.close(corr);
    this.runs.delete(corr);
    this.logger.info({ corr, digest: req.digest, reason: result.reason, exitCode: result.exitCode, wallMs: result.stats.wallMs }, 'run ended');
    await ep.sendJson(MsgType.EXIT, corr, result);
  }

  /** Command modules with instances kept ready, most recently used last (bounded: each costs a worker). */
  private readonly warm: CompiledModule[] = [];
  /** Received command modules waiting for a pause in arrivals to be warmed, most recent last. */
  private readonly toWarm = new Set<CompiledModule>();
  private warmTimer: NodeJS.Timeout | undefined;

  private warmWhenQuiet(module: CompiledModule): void {
    if (!this.engine.prewarm || this.warmPerModule === 0) return;
    this.toWarm.delete(module);
    this.toWarm.add(module);
    if (this.toWarm.size > MAX_WARM_MODULES) this.toWarm.delete(this.toWarm.values().next().value!);
    if (this.warmTimer) clearTimeout(this.warmTimer);
    let deferred = 0;
    const fire = (): void => {
      // A transfer that began meanwhile is the next upload of a burst: warming now would take the cores it
      // needs (a worker start and an instantiation), so wait for its end, which re-arms this timer anyway. A
      // transfer its agent abandoned must not hold warming off for ever: at most MAX_WARM_DEFERRALS times.
      if ((this.transfers.size > 0 || this.arriving.size > 0) && deferred++ < MAX_WARM_DEFERRALS) {
        this.warmTimer = setTimeout(fire, WARM_AFTER_QUIET_MS);
        this.warmTimer.unref();
        return;
      }
      this.warmTimer = undefined;
      const batch = [...this.toWarm];
      this.toWarm.clear();
      for (const m of batch) if (this.modules.get(m.digest) === m) this.keepWarm(m);
    };
    this.warmTimer = setTimeout(fire, WARM_AFTER_QUIET_MS);
    this.warmTimer.unref();
  }

  /** One instance ready ahead, so the next run of this command is a warm start; the least recent one cools. */
  private keepWarm(module: CompiledModule): void {
    if (!this.engine.prewarm || this.warmPerModule === 0) return;
    this.toWarm.delete(module);
    const i = this.warm.indexOf(module);
    if (i >= 0) {
      this.warm.splice(i, 1);
      this.warm.push(module);
      return;
    }
    this.warm.push(module);
    // The least recent cools first, so the engine can hand its worker to this module instead of spawning one.
    while (this.warm.length > MAX_WARM_MODULES) {
      const cold = this.warm.shift()!;
      this.engine.prewarm(cold, 0).catch(() => undefined);
    }
    this.engine.prewarm(module, this.warmPerModule).catch((err: unknown) => this.logger.warn({ digest: module.digest, err: String(err) }, 'prewarm failed'));
  }

  private endpointGone(ep: Endpoint): void {
    this.sessionLost(ep, 'endpoint closed');
    this.agentEpochs.delete(ep);
  }

  /** The agent behind `ep` is gone (closed, heartbeat stopped, or replaced): stop its runs, drop its transfers. */
  sessionLost(ep: Endpoint, why: string): void {
    let killed = 0;
    for (const [corr, run] of this.runs) {
      if (run.endpoint !== ep) continue;
      run.instance.kill(0);
      this.output.discard(corr);
      this.runs.delete(corr);
      killed++;
    }
    const dropped = this.transfers.size;
    this.transfers.clear();
    if (killed > 0 || dropped > 0) this.logger.warn({ why, killed, droppedTransfers: dropped }, 'agent session lost');
    this.agentEpochs.delete(ep);
  }

  get moduleCount(): number {
    return this.modules.size;
  }

  async close(): Promise<void> {
    if (this.warmTimer) clearTimeout(this.warmTimer);
    for (const run of this.runs.values()) run.instance.kill(0);
    await Promise.allSettled([...this.runs.values()].map((r) => r.instance.result));
    this.runs.clear();
    await this.apps.close();
    await Promise.allSettled([...this.engines.values()].map((e) => e.close()));
  }
}
