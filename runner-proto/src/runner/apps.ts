import { AgentError, toAgentError } from '../errors/index.js';
import type { CallResult, CompiledModule, Engine, ReactorCall, RunEvents, RunRequest, RunResult, RunStats, WasmValue } from '../engine/index.js';
import type { Logger } from '../log/index.js';
import type { AppOptions, DeployMessage, DeployResult } from '../protocol/index.js';
import { InstancePool } from './pool.js';

interface Version {
  readonly digest: string;
  readonly kind: 'command' | 'reactor';
  readonly module: CompiledModule;
  readonly options: AppOptions;
  /** Reactors only. */
  readonly pool: InstancePool | undefined;
  inFlight: number;
  calls: number;
}

interface App {
  current: Version;
  draining: Set<Version>;
}

const NO_EVENTS: RunEvents = { onStdout: () => undefined, onStderr: () => undefined };

function requestOf(o: AppOptions, argv0: string): RunRequest {
  return { argv0, args: o.args, env: o.env, preopens: o.preopens, limits: o.limits };
}

/**
 * Deployed applications: a name bound to one module version with its options. Deploying B beside A compiles B
 * (and for reactors starts at least one instance, so B is known to instantiate), switches atomically, then drains
 * A in the background: calls already on A finish there, new calls go to B. A B that fails leaves A serving.
 */
export class AppManager {
  private readonly engines: ReadonlyMap<string, Engine>;
  private readonly defaultEngine: string;
  private readonly logger: Logger;
  private readonly apps = new Map<string, App>();
  /** Deploys of one app run one at a time, so two racing deploys cannot both think they replaced A. */
  private readonly deploying = new Map<string, Promise<unknown>>();

  constructor(options: { engines: ReadonlyMap<string, Engine>; defaultEngine: string; logger: Logger }) {
    this.engines = options.engines;
    this.defaultEngine = options.defaultEngine;
    this.logger = options.logger;
  }

  engineFor(name: string | undefined): Engine {
    const n = name ?? this.defaultEngine;
    const e = this.engines.get(n);
    if (!e) throw new AgentError('AGT_ERR_RUN_LOAD', `engine "${n}" is not available on this runner (have: ${[...this.engines.keys()].join(', ')})`, { field: 'engine' });
    return e;
  }

  deploy(msg: DeployMessage, bytes: () => Uint8Array | undefined): Promise<DeployResult> {
    const prev = this.deploying.get(msg.app) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.deployNow(msg, bytes));
    this.deploying.set(msg.app, next);
    void next.finally(() => {
      if (this.deploying.get(msg.app) === next) this.deploying.delete(msg.app);
    }).catch(() => undefined);
    return next;
  }

  private async deployNow(msg: DeployMessage, bytes: () => Uint8Array | undefined): Promise<DeployResult> {
    const t0 = performance.now();
    const engine = this.engineFor(msg.options.engine);
    const b = bytes();
    if (!b) throw new AgentError('AGT_ERR_NOT_FOUND', `runner does not hold module ${msg.digest}; send it first`, { field: 'digest' });
    const module = await engine.compile(msg.digest, b);
    if (msg.kind === 'reactor' && module.kind === 'command') {
      throw new AgentError('AGT_ERR_RUN_LOAD', `app ${msg.app}: module ${msg.digest} is a command (exports _start), deployed as a reactor`);
    }
    const pool =
      msg.kind === 'reactor'
        ? new InstancePool({ engine, module, request: requestOf(msg.options, `${msg.app}.wasm`), config: msg.options.pool, logger: this.logger, events: NO_EVENTS })
        : undefined;
    let warmed = 0;
    try {
      if (pool) warmed = await pool.prewarm(true);
    } catch (err) {
      await pool?.close();
      throw err; // A keeps serving
    }
    const version: Version = { digest: msg.digest, kind: msg.kind, module, options: msg.options, pool, inFlight: 0, calls: 0 };
    const app = this.apps.get(msg.app);
    const previous = app?.current ?? null;
    if (app) {
      app.draining.add(app.current);
      app.current = version; // the switch: one assignment, so no call ever sees neither or both
      const old = previous!;
      void this.drain(app, old);
    } else {
      this.apps.set(msg.app, { current: version, draining: new Set() });
    }
    const ms = performance.now() - t0;
    this.logger.info({ app: msg.app, digest: msg.digest, previous: previous?.digest ?? null, warmed, ms: Math.round(ms) }, 'app deployed');
    return { app: msg.app, digest: msg.digest, previous: previous?.digest ?? null, warmed, ms };
  }

  private async drain(app: App, v: Version): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (v.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await v.pool?.drain();
    app.draining.delete(v);
  }

  async undeploy(name: string): Promise<boolean> {
    const app = this.apps.get(name);
    if (!app) return false;
    this.apps.delete(name);
    await Promise.all([app.current, ...app.draining].map((v) => v.pool?.drain()));
    return true;
  }

  private current(name: string): Version {
    const app = this.apps.get(name);
    if (!app) throw new AgentError('AGT_ERR_NOT_FOUND', `no app named ${name} is deployed on the runner`, { field: 'app' });
    return app.current;
  }

  private reactor(name: string): Version & { readonly pool: InstancePool } {
    const v = this.current(name);
    if (!v.pool) throw new AgentError('AGT_ERR_BAD_REQUEST', `app ${name} is a command; call works on reactors (use invoke or run)`, { field: 'app' });
    return v as Version & { readonly pool: InstancePool };
  }

  /** Calls a reactor app's function on a warm instance (FaaS mode). */
  async call(name: string, fn: string, args: readonly WasmValue[], limits?: { timeMs?: number; gas?: number }): Promise<CallResult> {
    const v = this.reactor(name);
    v.inFlight++;
    v.calls++;
    try {
      const t0 = performance.now();
      const { value, start } = await v.pool.use((inst) => inst.call(fn, args, limits ?? pickCallLimits(v.options)));
      return { ...value, stats: { ...value.stats, start, startMs: value.stats.startMs ?? performance.now() - t0 } } as CallResult;
    } finally {
      v.inFlight--;
    }
  }

  /**
   * Many calls at once (CALL_BATCH): each behaves as `call` would, and each settles on its own — a call that
   * cannot be made (no such app, a command app, no instance to be had) comes back as a `load` failure without
   * failing the others. Each app is looked up once per batch and each instance gets its share in one hand-off
   * (InstancePool.callBatch), which is what makes a batch cheaper than its calls one by one.
   */
  callBatch(calls: readonly BatchCall[]): Promise<CallResult[]> {
    const t0 = performance.now();
    const out = new Array<CallResult>(calls.length);
    let left = calls.length;
    return new Promise<CallResult[]>((resolve) => {
      if (left === 0) return resolve(out);
      const settle = (i: number, r: CallResult): void => {
        out[i] = r;
        if (--left === 0) resolve(out);
      };
      const byApp = new Map<string, number[]>();
      for (let i = 0; i < calls.length; i++) {
        const name = (calls[i] as BatchCall).app;
        const g = byApp.get(name);
        if (g) g.push(i);
        else byApp.set(name, [i]);
      }
      for (const [name, indices] of byApp) {
        let v: Version & { readonly pool: InstancePool };
        try {
          v = this.reactor(name);
        } catch (err) {
          for (const i of indices) settle(i, loadFailure(err));
          continue;
        }
        const version = v;
        version.inFlight += indices.length;
        version.calls += indices.length;
        const defaults = pickCallLimits(version.options);
        const hasDefaults = defaults.timeMs !== undefined || defaults.gas !== undefined;
        const mine: ReactorCall[] = indices.map((i) => {
          const c = calls[i] as BatchCall;
          return c.limits === undefined && hasDefaults ? { fn: c.fn, args: c.args, limits: defaults } : c;
        });
        version.pool.callBatch(mine, {
          done: (k, value, start) => {
            version.inFlight--;
            settle(indices[k] as number, withStart(value, start, value.stats.startMs ?? performance.now() - t0));
          },
          failed: (k, err) => {
            version.inFlight--;
            settle(indices[k] as number, loadFailure(err));
          },
        });
      }
    });
  }

  /** Bytes in, bytes out: runs a command app with `stdin`, collecting stdout (bounded by the output limit). */
  async invoke(name: string, stdin: Uint8Array, limits?: AppOptions['limits']): Promise<{ result: RunResult; stdout: Uint8Array; stderr: Uint8Array }> {
    const v = this.current(name);
    if (v.kind !== 'command') throw new AgentError('AGT_ERR_BAD_REQUEST', `app ${name} is a reactor; invoke works on commands (use call)`, { field: 'app' });
    v.inFlight++;
    v.calls++;
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    try {
      const engine = this.engineFor(v.options.engine);
      const req: RunRequest = { ...requestOf(v.options, `${name}.wasm`), stdin, limits: { ...v.options.limits, ...(limits ?? {}) } };
      const running = engine.run(v.module, req, { onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) });
      const result = await running.result;
      return { result, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
    } finally {
      v.inFlight--;
    }
  }

  /** The deployed version of a command app, for RUN requests that name an app. */
  command(name: string): { module: CompiledModule; options: AppOptions; engine: Engine } {
    const v = this.current(name);
    return { module: v.module, options: v.options, engine: this.engineFor(v.options.engine) };
  }

  list(): Array<{ app: string; digest: string; kind: 'command' | 'reactor'; draining: number; instances: number; idle: number; calls: number; coldStarts: number; warmStarts: number }> {
    return [...this.apps].map(([name, a]) => ({
      app: name,
      digest: a.current.digest,
      kind: a.current.kind,
      draining: a.draining.size,
      instances: a.current.pool?.size ?? 0,
      idle: a.current.pool?.idle ?? 0,
      calls: a.current.calls,
      coldStarts: a.current.pool?.coldStarts ?? 0,
      warmStarts: a.current.pool?.warmStarts ?? 0,
    }));
  }

  async close(): Promise<void> {
    const all = [...this.apps.values()].flatMap((a) => [a.current, ...a.draining]);
    this.apps.clear();
    await Promise.allSettled(all.map((v) => v.pool?.close()));
  }
}

/** One call of a batch (a CallMessage, as the runner decoded it). */
export interface BatchCall {
  readonly app: string;
  readonly fn: string;
  readonly args: readonly WasmValue[];
  readonly limits?: { timeMs?: number; gas?: number };
}

/**
 * `call`'s result decoration ({...value, stats: {...stats, start, startMs}}) spelled out: object spread of the
 * engine's results was a tenth of the runner's time in a busy batch.
 */
function withStart(value: CallResult, start: 'cold' | 'warm', startMs: number): CallResult {
  const s = value.stats;
  const stats: RunStats =
    s.instructions === undefined
      ? { wallMs: s.wallMs, peakPages: s.peakPages, start, startMs }
      : { wallMs: s.wallMs, peakPages: s.peakPages, instructions: s.instructions, start, startMs };
  if (value.ok) return { ok: true, results: value.results, stats };
  return value.message === undefined
    ? { ok: false, reason: value.reason, exitCode: value.exitCode, stats }
    : { ok: false, reason: value.reason, exitCode: value.exitCode, message: value.message, stats };
}

/** A call that could not be made, as a batch reports it: that call fails, the batch does not. */
function loadFailure(err: unknown): CallResult {
  const e = toAgentError(err);
  return { ok: false, reason: 'load', exitCode: 1, message: `${e.code}: ${e.message}`, stats: { wallMs: 0, peakPages: 0 } };
}

function pickCallLimits(o: AppOptions): { timeMs?: number; gas?: number } {
  const l: { timeMs?: number; gas?: number } = {};
  if (o.limits.timeMs !== undefined) l.timeMs = o.limits.timeMs;
  if (o.limits.gas !== undefined) l.gas = o.limits.gas;
  return l;
}
