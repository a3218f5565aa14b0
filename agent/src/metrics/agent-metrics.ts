import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

/** Counter whose value is read from elsewhere at scrape time (channel counters live in the transport). */
function sampledCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * The agent's Prometheus metrics, in a registry of its own (no global state; two agents in one test process
 * do not collide). Served at GET /metrics in the text exposition format.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly uploads: Counter<'result'>;
  readonly uploadBytes: Counter;
  readonly deploys: Counter<'result'>;
  readonly deployDuration: Histogram<'transfer'>;
  readonly runs: Counter<'reason'>;
  readonly runDuration: Histogram;
  readonly calls: Counter<'app' | 'result'>;
  readonly callDuration: Histogram<'app'>;
  readonly invokes: Counter<'app' | 'result'>;
  readonly invokeDuration: Histogram<'app'>;
  readonly requests: Counter<'route' | 'status'>;
  readonly inbox: Counter<'result'>;
  readonly reconciles: Counter<'trigger' | 'result'>;
  readonly reconcileDuration: Histogram<'trigger'>;
  readonly convergeSeconds: Gauge;

  constructor(sources: MetricSources, options: { processMetrics: boolean }) {
    const r = [this.registry];
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'wasmedge_agent_' });
    this.uploads = new Counter({ name: 'wasmedge_agent_uploads_total', help: 'Module uploads by result (stored, unchanged, rejected)', labelNames: ['result'], registers: r });
    this.uploadBytes = new Counter({ name: 'wasmedge_agent_upload_bytes_total', help: 'Bytes of accepted module uploads', registers: r });
    this.deploys = new Counter({ name: 'wasmedge_agent_deploys_total', help: 'App deploys by result (deployed, unchanged, pending, failed)', labelNames: ['result'], registers: r });
    this.deployDuration = new Histogram({
      name: 'wasmedge_agent_deploy_duration_seconds',
      help: 'Deploy latency inside the agent, from request to the runner switching; transfer="yes" when module bytes had to be sent',
      labelNames: ['transfer'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.runs = new Counter({ name: 'wasmedge_agent_runs_total', help: 'Command runs by how they ended (exit, trap, timeout, ...)', labelNames: ['reason'], registers: r });
    this.runDuration = new Histogram({ name: 'wasmedge_agent_run_duration_seconds', help: 'Wall time of runs', buckets: RUN_BUCKETS, registers: r });
    this.calls = new Counter({ name: 'wasmedge_agent_calls_total', help: 'Reactor function calls by app and result (ok, trap, timeout, gas, error, ...)', labelNames: ['app', 'result'], registers: r });
    this.callDuration = new Histogram({ name: 'wasmedge_agent_call_duration_seconds', help: 'Call latency through the agent (channel + runner)', labelNames: ['app'], buckets: LATENCY_BUCKETS, registers: r });
    this.invokes = new Counter({ name: 'wasmedge_agent_invokes_total', help: 'Command app invocations by app and result', labelNames: ['app', 'result'], registers: r });
    this.invokeDuration = new Histogram({ name: 'wasmedge_agent_invoke_duration_seconds', help: 'Invoke latency through the agent', labelNames: ['app'], buckets: LATENCY_BUCKETS, registers: r });
    this.requests = new Counter({ name: 'wasmedge_agent_api_requests_total', help: 'API requests by route and HTTP status', labelNames: ['route', 'status'], registers: r });
    this.inbox = new Counter({ name: 'wasmedge_agent_inbox_files_total', help: 'Inbox files handled, by result (deployed, unchanged, rejected, error)', labelNames: ['result'], registers: r });
    this.reconciles = new Counter({ name: 'wasmedge_agent_reconciles_total', help: 'Passes comparing the runner with the desired state, by trigger and result', labelNames: ['trigger', 'result'], registers: r });
    this.reconcileDuration = new Histogram({ name: 'wasmedge_agent_reconcile_duration_seconds', help: 'Duration of reconcile passes', labelNames: ['trigger'], buckets: LATENCY_BUCKETS, registers: r });
    this.convergeSeconds = new Gauge({ name: 'wasmedge_agent_last_converge_seconds', help: 'Time from the last (re)connection to the runner running every desired app', registers: r });

    sampledCounter(this.registry, 'wasmedge_channel_frames_in_total', 'Frames received from the runner', () => sources.channel().framesIn);
    sampledCounter(this.registry, 'wasmedge_channel_frames_out_total', 'Frames sent to the runner', () => sources.channel().framesOut);
    sampledCounter(this.registry, 'wasmedge_channel_faults_total', 'Frames or rings that failed their checks (CRC, bounds); the channel resynchronised', () => sources.channel().faults);
    sampledCounter(this.registry, 'wasmedge_channel_kicks_total', 'Doorbell kicks sent to the runner (ring transport)', () => sources.channel().kicks);
    sampledCounter(this.registry, 'wasmedge_runner_connects_total', 'Successful connections (HELLO) to the runner', () => sources.runner().connects);
    sampledCounter(this.registry, 'wasmedge_agent_log_lines_dropped_total', 'Log lines dropped from the ring to stay within its bounds', () => sources.logs().dropped);
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
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
