import { toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import type { AppService, RunnerAppInfo } from '../apps/index.js';
import type { ConnectedInfo, RunnerLink } from '../link/index.js';
import type { AgentMetrics } from '../metrics/index.js';

export type Trigger = 'connect' | 'runner-restart' | 'interval' | 'retry' | 'manual';

export interface ConvergeReport {
  readonly trigger: Trigger;
  readonly deployed: readonly string[];
  readonly adopted: readonly string[];
  readonly undeployed: readonly string[];
  readonly stoppedByRestart: readonly string[];
  readonly failed: ReadonlyArray<{ app: string; code: string; message: string }>;
  readonly ms: number;
}

/**
 * Keeps the runner running the desired state. A pass asks the runner which apps it has (APPS), then per app:
 *
 *   desired running, runner has it at the desired digest and generation applied  -> adopt (nothing sent)
 *   desired running, runner lacks it or runs another version                      -> send module if missing, DEPLOY
 *   desired running, not autostart, runner lost an applied app (it restarted)     -> record it stopped
 *   desired stopped or unknown, runner has it                                     -> UNDEPLOY
 *
 * Passes run on every (re)connection (the runner restarted, or this agent did), on a timer, and after
 * failures with back-off. One pass at a time; a request during a pass queues exactly one more. Apps converge in
 * parallel, each under its app lock, so a slow module transfer does not hold the others back.
 */
export class Reconciler {
  private readonly apps: AppService;
  private readonly link: RunnerLink;
  private readonly logger: Logger;
  private readonly metrics: AgentMetrics | undefined;
  private readonly intervalMs: number;
  private running: Promise<ConvergeReport | undefined> | undefined;
  private again: Trigger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 500;
  private connectedAt = 0;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  last: ConvergeReport | undefined;

  constructor(options: { apps: AppService; link: RunnerLink; logger: Logger; metrics?: AgentMetrics; intervalMs: number }) {
    this.apps = options.apps;
    this.link = options.link;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.intervalMs = options.intervalMs;
  }

  start(): void {
    this.unsubscribe = this.link.onConnected((info: ConnectedInfo) => {
      this.connectedAt = performance.now();
      void this.converge(info.runnerRestarted || info.modules === 0 ? 'runner-restart' : 'connect');
    });
    this.timer = setInterval(() => void this.converge('interval'), this.intervalMs);
    this.timer.unref();
  }

  /** Runs a pass now (or right after the one in progress); resolves with its report. */
  converge(trigger: Trigger): Promise<ConvergeReport | undefined> {
    if (this.stopped) return Promise.resolve(undefined);
    if (this.running) {
      this.again = this.again === 'runner-restart' ? this.again : trigger;
      return this.running.then(() => this.running ?? this.converge(trigger));
    }
    this.running = this.pass(trigger).finally(() => {
      this.running = undefined;
      const next = this.again;
      this.again = undefined;
      if (next && !this.stopped) void this.converge(next);
    });
    return this.running;
  }

  private async pass(trigger: Trigger): Promise<ConvergeReport | undefined> {
    if (!this.link.status().connected) return undefined;
    const t0 = performance.now();
    let onRunner: Map<string, RunnerAppInfo>;
    try {
      onRunner = new Map((await this.link.apps(5000)).map((a) => [a.app, a]));
    } catch (err) {
      this.logger.warn({ trigger, err: toAgentError(err).message }, 'reconcile: runner did not list its apps');
      this.metrics?.reconciles.inc({ trigger, result: 'error' });
      this.scheduleRetry();
      return undefined;
    }
    const deployed: string[] = [];
    const adopted: string[] = [];
    const undeployed: string[] = [];
    const stoppedByRestart: string[] = [];
    const failed: Array<{ app: string; code: string; message: string }> = [];
    const desired = this.apps.desired;

    await Promise.all(
      desired.list().map((snapshot) =>
        this.apps.locks.run(`app:${snapshot.name}`, async () => {
          const spec = desired.get(snapshot.name);
          if (!spec) return;
          const r = onRunner.get(spec.name);
          try {
            if (!spec.running) {
              if (r) {
                await this.link.undeploy(spec.name);
                undeployed.push(spec.name);
              }
              return;
            }
            const applied = desired.appliedGeneration(spec.name) === spec.generation;
            if (r && r.digest === spec.digest && r.kind === spec.kind && applied) {
              adopted.push(spec.name);
              this.apps.clearFailure(spec.name);
              return;
            }
            if (!r && applied && !spec.autostart) {
              // It ran, the runner lost it (restart), and it should not come back by itself.
              await desired.put({ ...spec, running: false, generation: spec.generation + 1, updatedAt: new Date().toISOString() });
              stoppedByRestart.push(spec.name);
              this.logger.warn({ app: spec.name }, 'app not restarted after the runner restart (autostart is off); start it to bring it back');
              return;
            }
            await this.apps.applyToRunner(spec);
            deployed.push(spec.name);
          } catch (err) {
            const e = toAgentError(err);
            this.apps.noteFailure(spec.name, e);
            failed.push({ app: spec.name, code: e.code, message: e.message });
          }
        }),
      ),
    );
    // Apps the runner has and the desired state does not know: left over from a removed app or another agent.
    for (const name of onRunner.keys()) {
      if (desired.get(name)) continue;
      await this.apps.locks.run(`app:${name}`, async () => {
        if (desired.get(name)) return;
        try {
          await this.link.undeploy(name);
          undeployed.push(name);
        } catch (err) {
          failed.push({ app: name, code: toAgentError(err).code, message: toAgentError(err).message });
        }
      });
    }
    const ms = performance.now() - t0;
    const report: ConvergeReport = { trigger, deployed, adopted, undeployed, stoppedByRestart, failed, ms };
    this.last = report;
    this.metrics?.reconciles.inc({ trigger, result: failed.length > 0 ? 'partial' : 'ok' });
    this.metrics?.reconcileDuration.observe({ trigger }, ms / 1000);
    if ((trigger === 'connect' || trigger === 'runner-restart') && failed.length === 0) {
      this.metrics?.convergeSeconds.set((performance.now() - this.connectedAt) / 1000);
    }
    if (deployed.length || undeployed.length || stoppedByRestart.length || failed.length || trigger !== 'interval') {
      const level = failed.length ? 'warn' : 'info';
      this.logger[level]({ trigger, deployed, adopted: adopted.length, undeployed, stoppedByRestart, failed: failed.map((f) => `${f.app}: ${f.code}`), ms: Math.round(ms) }, 'runner reconciled');
    }
    if (failed.length > 0) this.scheduleRetry();
    else this.retryMs = 500;
    return report;
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.converge('retry');
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, this.intervalMs);
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.running?.catch(() => undefined);
  }
}
