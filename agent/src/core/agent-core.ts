import { toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { AppService, type AppDefaults, type AppView } from '../apps/index.js';
import { checkModule, describeModule, type CheckPolicy, type ModuleKind, type ModuleSummary } from '../check/index.js';
import type { ChannelCounters, LinkStatus, RunHandle, RunOutput, RunnerLink } from '../link/index.js';
import { LineSplitter, type LogRing } from '../logs/index.js';
import { AgentMetrics } from '../metrics/index.js';
import { Reconciler, type ConvergeReport } from '../reconcile/index.js';
import type { DesiredState } from '../state/index.js';
import { ModuleStore, validateName, type NameRecord } from '../store/index.js';
import type { TrustStore } from '../trust/index.js';

export interface UploadResult {
  readonly name: string;
  readonly digest: string;
  readonly size: number;
  /** false when the store already held these bytes (re-upload is idempotent). */
  readonly created: boolean;
  readonly module: ModuleSummary;
  /** Key id of the trusted key that signed it, when signed. */
  readonly signer?: string;
}

export interface UploadOptions {
  /** Detached ed25519 signature over the bytes (raw, base64 or hex). */
  readonly signature?: Uint8Array | string;
  readonly kind?: 'command' | 'reactor';
  readonly expectedDigest?: string;
}

export interface RunRequest {
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly limits?: { readonly timeMs?: number; readonly memoryPages?: number; readonly outputBytes?: number; readonly gas?: number };
}

export interface AgentStatus {
  readonly runner: LinkStatus & { readonly lastPingMs?: number; readonly channel: ChannelCounters };
  readonly apps: ReadonlyArray<Pick<AppView, 'name' | 'kind' | 'digest' | 'status' | 'running' | 'autostart' | 'runner'>>;
  readonly modules: number;
  readonly runsActive: number;
  readonly runsTotal: number;
  readonly uptimeSec: number;
  readonly agent: { readonly pid: number; readonly rssBytes: number; readonly heapUsedBytes: number; readonly heapTotalBytes: number; readonly node: string };
  readonly trust: { readonly requireSignature: boolean; readonly keys: ReadonlyArray<{ id: string; label: string }> };
  readonly reconcile?: ConvergeReport;
}

export interface AgentCoreOptions {
  readonly store: ModuleStore;
  readonly link: RunnerLink;
  readonly desired: DesiredState;
  readonly trust: TrustStore;
  readonly policy: CheckPolicy;
  readonly logger: Logger;
  readonly logs: LogRing;
  readonly appDefaults: AppDefaults;
  readonly reconcileIntervalMs?: number;
  /** Prometheus metrics; off when false. */
  readonly metrics?: { readonly processMetrics: boolean } | false;
  /** How often the runner is pinged for the health gauge (ms). */
  readonly pingIntervalMs?: number;
}

/**
 * The agent's core: every surface (HTTP/WebSocket API, inbox, Nomad driver) calls these operations.
 * Data flows one way: check -> trust -> store -> desired state -> runner link.
 */
export class AgentCore {
  readonly store: ModuleStore;
  readonly link: RunnerLink;
  readonly desired: DesiredState;
  readonly trust: TrustStore;
  readonly apps: AppService;
  readonly reconciler: Reconciler;
  readonly logs: LogRing;
  readonly metrics: AgentMetrics | undefined;
  private readonly policy: CheckPolicy;
  private readonly logger: Logger;
  private readonly startedAt = Date.now();
  private readonly pingIntervalMs: number;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastPingMs: number | undefined;
  private runsActive = 0;
  private runsTotal = 0;

  constructor(o: AgentCoreOptions) {
    this.store = o.store;
    this.link = o.link;
    this.desired = o.desired;
    this.trust = o.trust;
    this.policy = o.policy;
    this.logger = o.logger;
    this.logs = o.logs;
    this.pingIntervalMs = o.pingIntervalMs ?? 5000;
    this.store.setRoots(() => this.desired.digests());
    this.metrics =
      o.metrics === false
        ? undefined
        : new AgentMetrics(
            {
              channel: () => this.link.counters(),
              runner: () => ({ connected: this.link.status().connected, connects: this.link.status().connects, inFlight: this.link.inFlight, lastPingMs: this.lastPingMs }),
              apps: () => this.apps.counts(),
              runnerApps: async () => [...((await this.apps.runnerApps(1000))?.entries() ?? [])].map(([app, a]) => ({ app, ...a })),
              logs: () => this.logs.stats(),
            },
            { processMetrics: o.metrics?.processMetrics ?? true },
          );
    this.apps = new AppService({
      store: o.store,
      link: o.link,
      desired: o.desired,
      trust: o.trust,
      policy: o.policy,
      defaults: o.appDefaults,
      logger: o.logger,
      logs: o.logs,
      ...(this.metrics ? { metrics: this.metrics } : {}),
    });
    this.reconciler = new Reconciler({ apps: this.apps, link: o.link, logger: o.logger, intervalMs: o.reconcileIntervalMs ?? 30_000, ...(this.metrics ? { metrics: this.metrics } : {}) });
  }

  /** Connects to the runner (in the background) and starts keeping it converged. */
  start(): void {
    this.reconciler.start();
    this.link.start();
    this.pingTimer = setInterval(() => {
      if (!this.link.status().connected) {
        this.lastPingMs = undefined;
        return;
      }
      this.link.ping(2000).then(
        (ms) => (this.lastPingMs = ms),
        () => (this.lastPingMs = undefined),
      );
    }, this.pingIntervalMs);
    this.pingTimer.unref();
  }

  get maxModuleBytes(): number {
    return this.policy.maxModuleBytes;
  }

  /** Checks (format, policy, signature), then stores: a module that fails any check is never written. */
  async upload(bytes: Uint8Array, name: string, opts: UploadOptions = {}): Promise<UploadResult> {
    try {
      validateName(name);
      const info = checkModule(bytes, this.policy, opts.kind ? { declaredKind: opts.kind } : {});
      const verdict = this.trust.check(bytes, opts.signature, `module ${name}`);
      const put = await this.store.put(bytes, opts.expectedDigest ? { expectedDigest: opts.expectedDigest } : {});
      const kind: ModuleKind = opts.kind ?? info.kind;
      const signature = typeof opts.signature === 'string' ? opts.signature.trim() : opts.signature ? Buffer.from(opts.signature).toString('base64') : undefined;
      await this.store.setName(name, put.digest, { kind, ...(verdict.signed ? { signer: verdict.keyId, signature: signature! } : {}) });
      this.apps.signatures.remember(put.digest, info.exports);
      this.apps.rememberKind(put.digest, info);
      this.metrics?.uploads.inc({ result: put.created ? 'stored' : 'unchanged' });
      this.metrics?.uploadBytes.inc(bytes.length);
      this.logger.info({ name, digest: put.digest, size: put.size, created: put.created, kind, signer: verdict.signed ? verdict.keyId : undefined }, 'module stored');
      return { name, digest: put.digest, size: put.size, created: put.created, module: describeModule(info), ...(verdict.signed ? { signer: verdict.keyId } : {}) };
    } catch (err) {
      this.metrics?.uploads.inc({ result: 'rejected' });
      throw err;
    }
  }

  async list(): Promise<readonly NameRecord[]> {
    return this.store.list();
  }

  async remove(name: string): Promise<NameRecord> {
    validateName(name);
    const r = await this.store.remove(name);
    this.logger.info({ name, collected: r.collected.length }, 'module removed');
    return r.removed;
  }

  /** Resolves a name (or digest), makes sure the runner holds the bytes, and starts a run. Output also goes to the log ring. */
  async run(ref: string, req: RunRequest, output: RunOutput): Promise<RunHandle> {
    const rec = await this.store.resolve(ref);
    const digest = rec.digest;
    const name = 'name' in rec ? rec.name : digest.slice(7, 19);
    await this.link.ensureModule(digest, () => this.store.get(digest));
    let runId = 0;
    const lines = new LineSplitter((stream, line) => this.logs.push({ source: 'app', app: name, run: runId, stream, line }));
    const handle = await this.link.run(
      { digest, argv0: `${name}.wasm`, args: [...(req.args ?? [])], env: { ...(req.env ?? {}) }, limits: req.limits ?? {} },
      {
        onStdout: (c) => {
          lines.write('stdout', c);
          output.onStdout(c);
        },
        onStderr: (c) => {
          lines.write('stderr', c);
          output.onStderr(c);
        },
      },
      { onRunId: (id) => (runId = id) },
    );
    runId = handle.runId;
    this.runsActive++;
    this.runsTotal++;
    const t0 = performance.now();
    handle.exit
      .then(
        (exit) => {
          lines.flush();
          this.metrics?.runs.inc({ reason: exit.reason });
          this.metrics?.runDuration.observe((performance.now() - t0) / 1000);
          this.logs.push({ source: 'app', app: name, run: runId, stream: 'event', level: exit.reason === 'exit' ? 'info' : 'warn', line: `run ${runId} ended: ${exit.reason} (exit ${exit.exitCode})${exit.message ? `: ${exit.message}` : ''}` });
        },
        (err: unknown) => {
          lines.flush();
          this.metrics?.runs.inc({ reason: 'lost' });
          this.logs.push({ source: 'app', app: name, run: runId, stream: 'event', level: 'warn', line: `run ${runId} lost: ${toAgentError(err).message}` });
        },
      )
      .finally(() => {
        this.runsActive--;
      })
      .catch(() => undefined);
    return handle;
  }

  async status(): Promise<AgentStatus> {
    const apps = await this.apps.list();
    return {
      runner: { ...this.link.status(), ...(this.lastPingMs !== undefined ? { lastPingMs: this.lastPingMs } : {}), channel: this.link.counters() },
      apps: apps.map((a) => ({ name: a.name, kind: a.kind, digest: a.digest, status: a.status, running: a.running, autostart: a.autostart, ...(a.runner ? { runner: a.runner } : {}) })),
      modules: (await this.store.list()).length,
      runsActive: this.runsActive,
      runsTotal: this.runsTotal,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      agent: (() => {
        const m = process.memoryUsage();
        return { pid: process.pid, rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, node: process.version };
      })(),
      trust: { requireSignature: this.trust.policy.requireSignature, keys: this.trust.list() },
      ...(this.reconciler.last ? { reconcile: this.reconciler.last } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    await this.reconciler.close();
    await this.link.close();
    await this.desired.close();
  }
}
