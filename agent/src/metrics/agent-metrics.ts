import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the metrics read at scrape time rather than count as events happen. */
export interface MetricSources {
  channel(): { framesIn: number; framesOut: number; faults: number; kicks: number };
  runner(): { connected: boolean; connects: number; inFlight: number; lastPingMs: number | undefined };
  apps(): { running: number; stopped: number };
  /** Pool stats per deployed app from the runner (bounded wait; empty when it is away). */
  runnerApps(): Promise<ReadonlyArray<{ app: string; instances: number; idle: number; draining: number; calls: number }>>;
  logs(): { dropped: number; lines: number };
}

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const RUN_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300];

type PromClient = typeof import('prom-client');
type LabelValues<L extends string> = Partial<Record<L, string | number>>;

/** Counter whose value is read from elsewhere at scrape time (channel counters live in the transport). */
function sampledCounter(p: PromClient, registry: Registry, name: string, help: string, read: () => number): Counter {
  return new p.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** How often the event-loop lag histogram takes a sample. */
const EVENT_LOOP_SAMPLE_MS = 100;
/** Operations recorded before prom-client is loaded; beyond this many it is loaded without waiting for a scrape. */
const BUFFER_LIMIT = 10_000;

/**
 * One metric as the agent records into it. Until prom-client is loaded (see AgentMetrics) operations are kept
 * in order and replayed into the real metric once it exists, so nothing recorded before the first scrape is lost.
 */
class Deferred<M> {
  private real: M | undefined;
  private ops: Array<(m: M) => void> = [];

  constructor(private readonly buffered: () => boolean) {}

  protected apply(op: (m: M) => void): void {
    if (this.real !== undefined) op(this.real);
    else if (this.buffered()) this.ops.push(op);
  }

  attach(real: M): void {
    this.real = real;
    const ops = this.ops;
    this.ops = [];
    for (const op of ops) op(real);
  }
}

export class CounterMetric<L extends string = never> extends Deferred<Counter<L>> {
  inc(labels: LabelValues<L>, value?: number): void;
  inc(value?: number): void;
  inc(a?: LabelValues<L> | number, value?: number): void {
    this.apply((m) => (typeof a === 'object' ? m.inc(a, value) : m.inc(a)));
  }
}

export class HistogramMetric<L extends string = never> extends Deferred<Histogram<L>> {
  observe(labels: LabelValues<L>, value: number): void;
  observe(value: number): void;
  observe(a: LabelValues<L> | number, value?: number): void {
    this.apply((m) => (typeof a === 'object' ? m.observe(a, value ?? 0) : m.observe(a)));
  }
}

export class GaugeMetric extends Deferred<Gauge> {
  set(value: number): void {
    this.apply((m) => m.set(value));
  }
}

/**
 * The agent's Prometheus metrics, in a registry of its own (no global state; two agents in one test process
 * do not collide). Served at GET /metrics in the text exposition format.
 *
 * prom-client is imported on the first scrape, on `start()` (the daemon calls it after READY when process
 * metrics are on) or once BUFFER_LIMIT operations wait for it, never during start-up: loading it and building
 * the registry took 0.13-0.16 s of the agent's start under QEMU's TCG (docs/benchmarks.md).
 */
export class AgentMetrics {
  readonly uploads: CounterMetric<'result'>;
  readonly uploadBytes: CounterMetric;
  readonly deploys: CounterMetric<'result'>;
  readonly deployDuration: HistogramMetric<'transfer'>;
  readonly runs: CounterMetric<'reason'>;
  readonly runDuration: HistogramMetric;
  readonly calls: CounterMetric<'app' | 'result'>;
  readonly callDuration: HistogramMetric<'app'>;
  readonly invokes: CounterMetric<'app' | 'result'>;
  readonly invokeDuration: HistogramMetric<'app'>;
  readonly requests: CounterMetric<'route' | 'status'>;
  readonly inbox: CounterMetric<'result'>;
  readonly reconciles: CounterMetric<'trigger' | 'result'>;
  readonly reconcileDuration: HistogramMetric<'trigger'>;
  readonly convergeSeconds: GaugeMetric;
  private readonly sources: MetricSources;
  private readonly options: { processMetrics: boolean };
  private registry: Registry | undefined;
  private loading: Promise<Registry> | undefined;
  private pending = 0;
  private failed = false;

  constructor(sources: MetricSources, options: { processMetrics: boolean }) {
    this.sources = sources;
    this.options = options;
    const buffered = (): boolean => {
      if (this.failed) return false;
      if (++this.pending >= BUFFER_LIMIT) void this.start().catch(() => undefined);
      return true;
    };
    this.uploads = new CounterMetric(buffered);
    this.uploadBytes = new CounterMetric(buffered);
    this.deploys = new CounterMetric(buffered);
    this.deployDuration = new HistogramMetric(buffered);
    this.runs = new CounterMetric(buffered);
    this.runDuration = new HistogramMetric(buffered);
    this.calls = new CounterMetric(buffered);
    this.callDuration = new HistogramMetric(buffered);
    this.invokes = new CounterMetric(buffered);
    this.invokeDuration = new HistogramMetric(buffered);
    this.requests = new CounterMetric(buffered);
    this.inbox = new CounterMetric(buffered);
    this.reconciles = new CounterMetric(buffered);
    this.reconcileDuration = new HistogramMetric(buffered);
    this.convergeSeconds = new GaugeMetric(buffered);
  }

  /** Loads prom-client and builds the registry (once); what was recorded so far is replayed into it. */
  start(): Promise<Registry> {
    this.loading ??= import('prom-client').then(
      (p) => {
        this.registry = this.build(p);
        this.pending = 0;
        return this.registry;
      },
      (err: unknown) => {
        // Recording stops (nothing would ever drain the buffers); scrapes answer the error.
        this.failed = true;
        throw err;
      },
    );
    return this.loading;
  }

  private build(p: PromClient): Registry {
    const registry = new p.Registry();
    const r = [registry];
    const sources = this.sources;
    const { Counter, Gauge, Histogram } = p;
    // The event-loop lag monitor samples on a libuv timer; prom-client's default of every 10 ms woke an idle agent
    // 100 times a second (about 1% of a CPU here). Every 100 ms still catches the stalls that matter.
    if (this.options.processMetrics) p.collectDefaultMetrics({ register: registry, prefix: 'wasmedge_agent_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.uploads.attach(new Counter({ name: 'wasmedge_agent_uploads_total', help: 'Module uploads by result (stored, unchanged, rejected)', labelNames: ['result'], registers: r }));
    this.uploadBytes.attach(new Counter({ name: 'wasmedge_agent_upload_bytes_total', help: 'Bytes of accepted module uploads', registers: r }));
    this.deploys.attach(new Counter({ name: 'wasmedge_agent_deploys_total', help: 'App deploys by result (deployed, unchanged, pending, failed)', labelNames: ['result'], registers: r }));
    this.deployDuration.attach(
      new Histogram({
        name: 'wasmedge_agent_deploy_duration_seconds',
        help: 'Deploy latency inside the agent, from request to the runner switching; transfer="yes" when module bytes had to be sent',
        labelNames: ['transfer'],
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
    );
    this.runs.attach(new Counter({ name: 'wasmedge_agent_runs_total', help: 'Command runs by how they ended (exit, trap, timeout, ...)', labelNames: ['reason'], registers: r }));
    this.runDuration.attach(new Histogram({ name: 'wasmedge_agent_run_duration_seconds', help: 'Wall time of runs', buckets: RUN_BUCKETS, registers: r }));
    this.calls.attach(new Counter({ name: 'wasmedge_agent_calls_total', help: 'Reactor function calls by app and result (ok, trap, timeout, gas, error, ...)', labelNames: ['app', 'result'], registers: r }));
    this.callDuration.attach(new Histogram({ name: 'wasmedge_agent_call_duration_seconds', help: 'Call latency through the agent (channel + runner)', labelNames: ['app'], buckets: LATENCY_BUCKETS, registers: r }));
    this.invokes.attach(new Counter({ name: 'wasmedge_agent_invokes_total', help: 'Command app invocations by app and result', labelNames: ['app', 'result'], registers: r }));
    this.invokeDuration.attach(new Histogram({ name: 'wasmedge_agent_invoke_duration_seconds', help: 'Invoke latency through the agent', labelNames: ['app'], buckets: LATENCY_BUCKETS, registers: r }));
    this.requests.attach(new Counter({ name: 'wasmedge_agent_api_requests_total', help: 'API requests by route and HTTP status', labelNames: ['route', 'status'], registers: r }));
    this.inbox.attach(new Counter({ name: 'wasmedge_agent_inbox_files_total', help: 'Inbox files handled, by result (deployed, unchanged, rejected, error)', labelNames: ['result'], registers: r }));
    this.reconciles.attach(new Counter({ name: 'wasmedge_agent_reconciles_total', help: 'Passes comparing the runner with the desired state, by trigger and result', labelNames: ['trigger', 'result'], registers: r }));
    this.reconcileDuration.attach(new Histogram({ name: 'wasmedge_agent_reconcile_duration_seconds', help: 'Duration of reconcile passes', labelNames: ['trigger'], buckets: LATENCY_BUCKETS, registers: r }));
    this.convergeSeconds.attach(new Gauge({ name: 'wasmedge_agent_last_converge_seconds', help: 'Time from the last (re)connection to the runner running every desired app', registers: r }));

    sampledCounter(p, registry, 'wasmedge_channel_frames_in_total', 'Frames received from the runner', () => sources.channel().framesIn);
    sampledCounter(p, registry, 'wasmedge_channel_frames_out_total', 'Frames sent to the runner', () => sources.channel().framesOut);
    sampledCounter(p, registry, 'wasmedge_channel_faults_total', 'Frames or rings that failed their checks (CRC, bounds); the channel resynchronised', () => sources.channel().faults);
    sampledCounter(p, registry, 'wasmedge_channel_kicks_total', 'Doorbell kicks sent to the runner (ring transport)', () => sources.channel().kicks);
    sampledCounter(p, registry, 'wasmedge_runner_connects_total', 'Successful connections (HELLO) to the runner', () => sources.runner().connects);
    sampledCounter(p, registry, 'wasmedge_agent_log_lines_dropped_total', 'Log lines dropped from the ring to stay within its bounds', () => sources.logs().dropped);
    new Gauge({ name: 'wasmedge_runner_up', help: '1 when the agent has a live link to the runner', registers: r, collect() { this.set(sources.runner().connected ? 1 : 0); } });
    new Gauge({ name: 'wasmedge_runner_requests_in_flight', help: 'Channel requests waiting for the runner', registers: r, collect() { this.set(sources.runner().inFlight); } });
    new Gauge({
      name: 'wasmedge_runner_ping_seconds',
      help: 'Round trip of the last health ping to the runner (NaN when it failed)',
      registers: r,
      collect() {
        const ms = sources.runner().lastPingMs;
        this.set(ms === undefined ? Number.NaN : ms / 1000);
      },
    });
    new Gauge({
      name: 'wasmedge_agent_apps',
      help: 'Apps in the desired state, by desired state (running, stopped)',
      labelNames: ['state'],
      registers: r,
      collect() {
        const a = sources.apps();
        this.set({ state: 'running' }, a.running);
        this.set({ state: 'stopped' }, a.stopped);
      },
    });
    // Both gauges below come from one APPS round trip per scrape (prom-client collects metrics concurrently).
    let shared: { at: number; p: ReturnType<MetricSources['runnerApps']> } | undefined;
    const runnerApps = (): ReturnType<MetricSources['runnerApps']> => {
      const now = performance.now();
      if (!shared || now - shared.at > 250) shared = { at: now, p: sources.runnerApps().catch(() => []) };
      return shared.p;
    };
    new Gauge({
      name: 'wasmedge_runner_app_instances',
      help: 'Instances of each deployed app on the runner, by state (idle, busy, draining)',
      labelNames: ['app', 'state'],
      registers: r,
      async collect() {
        const apps = await runnerApps();
        this.reset();
        for (const a of apps) {
          this.set({ app: a.app, state: 'idle' }, a.idle);
          this.set({ app: a.app, state: 'busy' }, Math.max(0, a.instances - a.idle));
          this.set({ app: a.app, state: 'draining' }, a.draining);
        }
      },
    });
    new Gauge({
      name: 'wasmedge_runner_apps',
      help: 'Apps deployed on the runner right now',
      registers: r,
      async collect() {
        this.set((await runnerApps()).length);
      },
    });
    new Gauge({ name: 'wasmedge_agent_log_ring_lines', help: 'Lines held in the log ring', registers: r, collect() { this.set(sources.logs().lines); } });
    return registry;
  }

  get contentType(): string {
    return this.registry?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8';
  }

  async text(): Promise<string> {
    return (await this.start()).metrics();
  }
}
