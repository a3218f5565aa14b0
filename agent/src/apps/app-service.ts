import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import type { DeployMessage, DeployResult } from '../../../runner-proto/src/protocol/index.js';
import { checkModule, type CheckPolicy, type ModuleInfo } from '../check/index.js';
import type { RunnerLink } from '../link/index.js';
import type { LogRing } from '../logs/index.js';
import type { AgentMetrics } from '../metrics/index.js';
import { DesiredState, deployFingerprint, type AppSpec } from '../state/index.js';
import { KeyedLock, ModuleStore, digestOf, validateName, type NameRecord } from '../store/index.js';
import type { TrustStore, Verdict } from '../trust/index.js';
import { buildOptions, type AppDefaults } from './app-options.js';
import { coerceArgs, type WasmValue } from './coerce.js';
import type { AppSettings, CallBody } from './deploy-request.js';
import { ExportSignatures } from './export-signatures.js';

/** Where a deploy's module comes from: bytes in the request (checked, stored), or the store (by name or digest). */
export type ModuleSource =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array; readonly signature?: Uint8Array | string; readonly nameModule?: boolean }
  | { readonly kind: 'stored'; readonly ref: string };

export interface DeployOutcome {
  readonly app: string;
  readonly digest: string;
  readonly kind: 'command' | 'reactor';
  readonly generation: number;
  /** true when the runner switched to it; false when the runner is away (it will be deployed on reconnect). */
  readonly applied: boolean;
  /** Nothing changed: no disk write, no runner round trip. */
  readonly unchanged: boolean;
  /** Module bytes went to the runner (it did not hold them). */
  readonly transferred: boolean;
  readonly previous: string | null;
  readonly signer?: string;
  readonly runner?: DeployResult;
  readonly ms: number;
}

export interface RunnerAppInfo {
  readonly digest: string;
  readonly kind: 'command' | 'reactor';
  readonly instances: number;
  readonly idle: number;
  readonly draining: number;
  readonly calls: number;
  readonly coldStarts: number;
  readonly warmStarts: number;
}

export type AppStatus = 'running' | 'pending' | 'stopped' | 'failed' | 'drifted' | 'unknown';

export interface AppView extends AppSpec {
  readonly status: AppStatus;
  readonly runner?: RunnerAppInfo;
  readonly lastError?: { readonly code: string; readonly message: string; readonly at: string };
}

export interface AppServiceOptions {
  readonly store: ModuleStore;
  readonly link: RunnerLink;
  readonly desired: DesiredState;
  readonly trust: TrustStore;
  readonly policy: CheckPolicy;
  readonly defaults: AppDefaults;
  readonly logger: Logger;
  readonly logs: LogRing;
  readonly metrics?: AgentMetrics;
}

/** How long a deploy waits for a link that is not up before recording the app for later (202). */
const CONNECT_GRACE_MS = 2000;

/** Codes after which the desired state stays as requested: the runner is away, not unwilling. */
const TRANSIENT = new Set(['AGT_ERR_RUNNER_UNAVAILABLE', 'AGT_ERR_TIMEOUT']);

function now(): string {
  return new Date().toISOString();
}

function kindOf(info: ModuleInfo, declared: 'command' | 'reactor' | undefined): 'command' | 'reactor' {
  if (declared) return declared;
  return info.kind === 'command' ? 'command' : 'reactor';
}

/**
 * Apps: deploy (hot, atomic on the runner), stop, start, remove, call, invoke. Every change to one app runs
 * under that app's lock ('app:NAME'), which the reconciler takes too, so a deploy and a re-convergence never
 * interleave on one app.
 *
 * A deploy's steps overlap where crash safety allows (see deploy()): the blob is made durable before any
 * state that refers to it, and the desired state is durable before the answer; the runner may switch before
 * the desired state is written, because a crash in between is repaired by re-convergence at restart (the
 * caller never got an answer, so either version is a correct outcome).
 */
export class AppService {
  readonly locks = new KeyedLock();
  readonly signatures = new ExportSignatures();
  private readonly o: AppServiceOptions;
  private readonly failures = new Map<string, { code: string; message: string; at: string }>();
  /** What the checker found each digest to be, so deploying a stored module by digest needs no re-check. */
  private readonly kinds = new Map<string, 'command' | 'reactor'>();

  /** Records a checked module's kind (uploads call this too). */
  rememberKind(digest: string, info: ModuleInfo): void {
    this.kinds.set(digest, info.kind === 'command' ? 'command' : 'reactor');
    if (this.kinds.size > 4096) this.kinds.delete(this.kinds.keys().next().value!);
  }

  constructor(options: AppServiceOptions) {
    this.o = options;
  }

  get desired(): DesiredState {
    return this.o.desired;
  }

  /** Deploys (or redeploys) app `name`; see DeployOutcome. Throws AgentError for refusals. */
  async deploy(name: string, settings: AppSettings, source: ModuleSource): Promise<DeployOutcome> {
    validateName(name);
    const t0 = performance.now();
    try {
      const out = await this.locks.run(`app:${name}`, () => this.deployLocked(name, settings, source, t0));
      this.o.metrics?.deploys.inc({ result: out.unchanged ? 'unchanged' : out.applied ? 'deployed' : 'pending' });
      if (!out.unchanged) this.o.metrics?.deployDuration.observe({ transfer: out.transferred ? 'yes' : 'no' }, out.ms / 1000);
      return out;
    } catch (err) {
      this.o.metrics?.deploys.inc({ result: 'failed' });
      const e = toAgentError(err);
      this.o.logger.warn({ app: name, code: e.code, err: e.message }, 'deploy refused');
      throw e;
    }
  }

  private async deployLocked(name: string, s: AppSettings, source: ModuleSource, t0: number): Promise<DeployOutcome> {
    const { store, link, desired, trust, policy } = this.o;
    const prev = desired.get(name);

    // 1. The module: checked (bytes) or resolved (stored), its kind, and who signed it.
    let digest: string;
    let kind: 'command' | 'reactor';
    let bytes: Uint8Array | undefined;
    let verdict: Verdict = { signed: false };
    let moduleName: string | undefined;
    const pin = s.pin === null ? undefined : (s.pin ?? prev?.pin);
    // Bytes sent ahead of their check (below) are withdrawn from the runner by any refusal up to the pin check.
    let sentAhead = false;
    try {
      if (source.kind === 'bytes') {
        bytes = source.bytes;
        digest = digestOf(bytes);
        // The runner's hash and compile are the longest part of a new module's deploy: start them now, beside the
        // check. The runner holds the bytes but runs nothing until a DEPLOY, sent only once they pass; refused
        // bytes are withdrawn (below).
        sentAhead = bytes.length <= policy.maxModuleBytes && link.sendAhead(digest, bytes);
        const info = checkModule(bytes, policy, { declaredKind: s.kind });
        verdict = trust.check(bytes, source.signature, `module for app ${name}`);
        kind = kindOf(info, s.kind);
        this.signatures.remember(digest, info.exports);
        this.rememberKind(digest, info);
        if (source.nameModule) moduleName = name;
      } else {
        const rec = await store.resolve(source.ref);
        digest = rec.digest;
        const meta = 'name' in rec ? (rec as NameRecord).meta : undefined;
        moduleName = 'name' in rec ? (rec as NameRecord).name : undefined;
        const storedKind = typeof meta?.kind === 'string' ? meta.kind : this.kinds.get(digest);
        // Re-checked under today's policy when the store cannot vouch for it: unknown kind, or signatures required.
        if (storedKind === undefined || trust.policy.requireSignature || (s.kind !== undefined && s.kind !== storedKind)) {
          bytes = await store.get(digest);
          const info = checkModule(bytes, policy, { declaredKind: s.kind });
          kind = kindOf(info, s.kind);
          this.signatures.remember(digest, info.exports);
          this.rememberKind(digest, info);
          // Required: verified again under today's keys (a revoked key stops later deploys). Not required: the
          // upload verified it; the recorded signer is carried over.
          const sig = typeof meta?.signature === 'string' ? meta.signature : undefined;
          if (trust.policy.requireSignature) verdict = trust.check(bytes, sig, `module ${source.ref}`);
          else if (typeof meta?.signer === 'string') verdict = { signed: true, keyId: meta.signer, label: '' };
        } else {
          kind = storedKind === 'command' ? 'command' : 'reactor';
          if (typeof meta?.signer === 'string') verdict = { signed: true, keyId: meta.signer, label: '' };
        }
      }
      if (s.expectedDigest !== undefined && s.expectedDigest !== digest) {
        throw new AgentError('AGT_ERR_DIGEST_MISMATCH', `module for app ${name} hashes to ${digest}, expected ${s.expectedDigest}; nothing was changed`, { field: 'expectedDigest', rule: 'expected-digest' });
      }
      if (pin !== undefined && pin !== digest) {
        throw new AgentError('AGT_ERR_DIGEST_MISMATCH', `app ${name} is pinned to ${pin}; refusing module ${digest} (deploy with pin: null, or a new pin, to change it)`, {
          field: 'pin',
          rule: 'pinned-digest',
          pinned: pin,
          received: digest,
        });
      }
    } catch (err) {
      if (sentAhead) void link.forgetModule(digest!);
      throw err;
    }

    const options = buildOptions(s, prev?.options, kind, this.o.defaults);
    const spec: AppSpec = {
      name,
      digest,
      kind,
      options,
      autostart: s.autostart ?? prev?.autostart ?? true,
      running: true,
      ...(pin !== undefined ? { pin } : {}),
      ...(moduleName !== undefined ? { module: moduleName } : {}),
      ...(verdict.signed ? { signer: verdict.keyId } : {}),
      generation: (prev?.generation ?? 0) + 1,
      updatedAt: now(),
    };

    // 2. Nothing to do: same module, same options, already running there. A link that is (re)connecting gets
    // a short grace so a deploy right after a restart does not come back as merely recorded.
    const connected = link.status().connected || (await link.connected(CONNECT_GRACE_MS).then(() => true, () => false));
    if (
      prev &&
      prev.running &&
      !s.restart &&
      // The digest first: a switch between versions (the common change) is told apart without canonical JSON.
      prev.digest === spec.digest &&
      deployFingerprint(prev) === deployFingerprint(spec) &&
      prev.autostart === spec.autostart &&
      prev.pin === spec.pin &&
      desired.appliedGeneration(name) === prev.generation &&
      connected
    ) {
      return { app: name, digest, kind, generation: prev.generation, applied: true, unchanged: true, transferred: false, previous: prev.digest, ms: performance.now() - t0, ...(prev.signer ? { signer: prev.signer } : {}) };
    }

    // 3. Overlapped: [blob durable (the name's record written meanwhile), then name + desired state durable]
    // alongside [bytes to runner, then DEPLOY]. Started in that order for new bytes: the store's writes first
    // (the longest leg), then the runner's, then the desired state (which must wait for the blob anyway). With
    // no bytes to store and the state on a disk, the desired-state write is queued first: it is the longer leg
    // there (one O_DSYNC write on a thread-pool thread), and queued behind the DEPLOY it would wait for the
    // agent to get its CPU back from the runner the DEPLOY's kick has woken. Written inline (tmpfs) it costs
    // microseconds and goes after the DEPLOY, which it would otherwise hold back.
    const load = (): Promise<Uint8Array> => (bytes ? Promise.resolve(bytes) : store.get(digest));
    let storing: { blob: Promise<unknown>; named: Promise<unknown> | undefined } = { blob: Promise.resolve(), named: undefined };
    let stateWrite: Promise<void> | undefined;
    if (source.kind === 'bytes') {
      const sig = source.signature;
      const meta = { kind, ...(verdict.signed ? { signer: verdict.keyId } : {}), ...(typeof sig === 'string' ? { signature: sig } : sig ? { signature: Buffer.from(sig).toString('base64') } : {}) };
      storing = moduleName ? store.putNamed(source.bytes, moduleName, meta, digest) : { blob: store.put(source.bytes, { expectedDigest: digest }), named: undefined };
    } else if (!desired.writesInline) {
      stateWrite = desired.put(spec);
    }
    let transferred = false;
    const deployed: Promise<DeployResult | undefined> = connected
      ? this.sendAndDeploy({ app: name, digest, kind, options }, load, bytes).then((r) => {
          transferred = r.transferred;
          return r.result;
        })
      : Promise.resolve(undefined);
    const persisted = Promise.all([stateWrite ?? (source.kind === 'bytes' ? storing.blob.then(() => desired.put(spec)) : desired.put(spec)), storing.named]).then(() => undefined);
    const [p, d] = await Promise.allSettled([persisted, deployed]);

    if (p.status === 'rejected') {
      // Not durable: put the runner back the way the (unchanged) desired state says, then report.
      if (d.status === 'fulfilled' && d.value) await this.revertRunner(name, prev).catch(() => undefined);
      throw p.reason;
    }
    if (d.status === 'rejected') {
      const e = toAgentError(d.reason);
      if (!TRANSIENT.has(e.code)) {
        // The runner refused B (it does not compile, instantiate, ...): A keeps serving, and the desired state goes back to A.
        await (prev ? desired.put(prev) : desired.remove(name)).catch((err: unknown) => this.o.logger.error({ app: name, err: String(err) }, 'could not roll back the desired state'));
        this.noteFailure(name, e);
        throw e;
      }
      this.noteFailure(name, e);
      this.o.logger.warn({ app: name, digest, err: e.message }, 'app recorded; the runner is away, it will be deployed when it is back');
      return { app: name, digest, kind, generation: spec.generation, applied: false, unchanged: false, transferred, previous: prev?.digest ?? null, ms: performance.now() - t0, ...(spec.signer ? { signer: spec.signer } : {}) };
    }
    const runner = d.value;
    if (runner) {
      desired.markApplied(name, spec.generation);
      this.failures.delete(name);
    }
    const ms = performance.now() - t0;
    // Logged once the answer is on its way: a line costs about 0.1 ms (serialised, parsed back into the log ring).
    const fields = { app: name, digest, kind, previous: prev?.digest ?? null, generation: spec.generation, applied: runner !== undefined, transferred, ms: Math.round(ms * 100) / 100 };
    setImmediate(() => this.o.logger.info(fields, runner ? 'app deployed' : 'app recorded; runner not connected'));
    return {
      app: name,
      digest,
      kind,
      generation: spec.generation,
      applied: runner !== undefined,
      unchanged: false,
      transferred,
      previous: prev?.digest ?? null,
      ms,
      ...(spec.signer ? { signer: spec.signer } : {}),
      ...(runner ? { runner } : {}),
    };
  }

  private async revertRunner(name: string, prev: AppSpec | undefined): Promise<void> {
    if (prev?.running) await this.applyToRunner(prev);
    else await this.o.link.undeploy(name);
  }

  /**
   * Module to the runner if it lacks it, then DEPLOY (back to back when the bytes are in hand, see
   * RunnerLink.deployModule); a runner that lost the module gets it again, once.
   */
  private async sendAndDeploy(msg: DeployMessage, load: () => Promise<Uint8Array>, bytes?: Uint8Array): Promise<{ transferred: boolean; result: DeployResult }> {
    const { link } = this.o;
    try {
      const r = await link.deployModule(msg, load, { deadlineMs: 30_000, ...(bytes ? { bytes } : {}) });
      return { transferred: r.sent, result: r.result };
    } catch (err) {
      const e = toAgentError(err);
      if (e.code !== 'AGT_ERR_NOT_FOUND' || e.details.field !== 'digest') throw e;
      link.forgetHeld(msg.digest);
      const sent = (await link.ensureModule(msg.digest, load, 30_000)).sent;
      return { transferred: sent, result: await link.deploy(msg) };
    }
  }

  /** Makes the runner run `spec` (module sent if missing); records it as applied. Caller holds the app lock. */
  async applyToRunner(spec: AppSpec): Promise<{ transferred: boolean }> {
    const r = await this.sendAndDeploy({ app: spec.name, digest: spec.digest, kind: spec.kind, options: spec.options }, () => this.o.store.get(spec.digest));
    this.o.desired.markApplied(spec.name, spec.generation);
    this.failures.delete(spec.name);
    return { transferred: r.transferred };
  }

  noteFailure(name: string, e: AgentError): void {
    const prev = this.failures.get(name);
    this.failures.set(name, { code: e.code, message: e.message, at: now() });
    if (prev?.message !== e.message) this.o.logs.push({ source: 'app', app: name, stream: 'event', level: 'warn', line: `deploy failed: ${e.message} [${e.code}]` });
  }

  clearFailure(name: string): void {
    this.failures.delete(name);
  }

  /** Stops an app (undeploys it) and keeps its spec for `start`. */
  async stop(name: string): Promise<AppView> {
    validateName(name);
    return this.locks.run(`app:${name}`, async () => {
      const spec = this.require(name);
      if (spec.running) await this.o.desired.put({ ...spec, running: false, generation: spec.generation + 1, updatedAt: now() });
      if (this.o.link.status().connected) await this.o.link.undeploy(name);
      this.failures.delete(name);
      this.o.logger.info({ app: name }, 'app stopped');
      return this.view(this.require(name), await this.runnerApps());
    });
  }

  /** Starts a stopped app with its recorded spec. */
  async start(name: string): Promise<AppView> {
    validateName(name);
    return this.locks.run(`app:${name}`, async () => {
      let spec = this.require(name);
      if (!spec.running) {
        spec = { ...spec, running: true, generation: spec.generation + 1, updatedAt: now() };
        await this.o.desired.put(spec);
      }
      if (this.o.link.status().connected) {
        try {
          await this.applyToRunner(spec);
        } catch (err) {
          const e = toAgentError(err);
          this.noteFailure(name, e);
          if (!TRANSIENT.has(e.code)) throw e;
        }
      }
      this.o.logger.info({ app: name }, 'app started');
      return this.view(spec, await this.runnerApps());
    });
  }

  /** Undeploys and forgets an app. The module stays in the store (remove it by name). */
  async remove(name: string): Promise<AppSpec> {
    validateName(name);
    return this.locks.run(`app:${name}`, async () => {
      const spec = this.require(name);
      await this.o.desired.remove(name);
      if (this.o.link.status().connected) await this.o.link.undeploy(name).catch(() => undefined);
      this.failures.delete(name);
      this.o.logger.info({ app: name }, 'app removed');
      return spec;
    });
  }

  private require(name: string): AppSpec {
    const spec = this.o.desired.get(name);
    if (!spec) throw new AgentError('AGT_ERR_NOT_FOUND', `no app named ${JSON.stringify(name)}; deploy it first (wasmedge_emit apps lists them)`, { field: 'app' });
    return spec;
  }

  /** Runner-side facts per app, or undefined when the runner cannot answer within `timeoutMs`. */
  async runnerApps(timeoutMs = 1000): Promise<Map<string, RunnerAppInfo> | undefined> {
    if (!this.o.link.status().connected) return undefined;
    try {
      const apps = await this.o.link.apps(timeoutMs);
      return new Map(apps.map((a) => [a.app, a]));
    } catch {
      return undefined;
    }
  }

  view(spec: AppSpec, onRunner: Map<string, RunnerAppInfo> | undefined): AppView {
    const r = onRunner?.get(spec.name);
    const failure = this.failures.get(spec.name);
    let status: AppStatus;
    if (!spec.running) status = 'stopped';
    else if (onRunner === undefined) status = 'unknown';
    else if (r && r.digest === spec.digest) status = 'running';
    else if (failure) status = 'failed';
    else if (r) status = 'drifted';
    else status = 'pending';
    return { ...spec, status, ...(r ? { runner: r } : {}), ...(failure ? { lastError: failure } : {}) };
  }

  async list(): Promise<AppView[]> {
    const onRunner = await this.runnerApps();
    return this.o.desired.list().map((s) => this.view(s, onRunner));
  }

  async get(name: string): Promise<AppView> {
    validateName(name);
    const spec = this.require(name);
    return this.view(spec, await this.runnerApps());
  }

  private serving(name: string, want: 'command' | 'reactor', op: string): AppSpec {
    const spec = this.o.desired.get(name);
    if (!spec) throw new AgentError('AGT_ERR_NOT_FOUND', `no app named ${JSON.stringify(name)}`, { field: 'app' });
    if (!spec.running) throw new AgentError('AGT_ERR_CONFLICT', `app ${name} is stopped; start it first`, { field: 'app', rule: 'app-stopped' });
    if (spec.kind !== want) {
      throw new AgentError('AGT_ERR_CONFLICT', `app ${name} is a ${spec.kind}; ${op} works on ${want}s (${want === 'reactor' ? 'use invoke or run' : 'use call'})`, { field: 'app', rule: 'app-kind' });
    }
    return spec;
  }

  /** Calls a reactor app's exported function. Traps and limits come back as `ok: false`, not as errors. */
  async call(name: string, body: CallBody): Promise<Awaited<ReturnType<RunnerLink['call']>>> {
    const spec = this.serving(name, 'reactor', 'call');
    const sig = this.signatures.peek(spec.digest, body.fn) ?? (await this.signatures.get(spec.digest, body.fn, () => this.o.store.get(spec.digest)));
    const args: WasmValue[] = coerceArgs(body.fn, sig, body.args);
    const t0 = performance.now();
    let r: Awaited<ReturnType<RunnerLink['call']>>;
    try {
      r = await this.o.link.call({ app: name, fn: body.fn, args, ...(body.limits ? { limits: body.limits } : {}) });
    } catch (err) {
      this.o.metrics?.calls.inc({ app: name, result: 'error' });
      throw err;
    }
    const m = this.o.metrics;
    if (m) {
      m.calls.inc({ app: name, result: r.ok ? 'ok' : r.reason });
      m.callDuration.observe({ app: name }, (performance.now() - t0) / 1000);
    }
    if (!r.ok) this.o.logs.push({ source: 'app', app: name, stream: 'event', level: 'warn', line: `call ${body.fn}: ${r.reason}${r.message ? `: ${r.message}` : ''} (exit ${r.exitCode})` });
    return r;
  }

  /** Runs a command app with `stdin`; answers its stdout and exit (stderr goes to the log ring). */
  async invoke(name: string, stdin: Uint8Array): Promise<Awaited<ReturnType<RunnerLink['invoke']>>> {
    this.serving(name, 'command', 'invoke');
    const t0 = performance.now();
    let r: Awaited<ReturnType<RunnerLink['invoke']>>;
    try {
      r = await this.o.link.invoke(name, stdin);
    } catch (err) {
      this.o.metrics?.invokes.inc({ app: name, result: 'error' });
      throw err;
    }
    this.o.metrics?.invokes.inc({ app: name, result: r.head.reason });
    this.o.metrics?.invokeDuration.observe({ app: name }, (performance.now() - t0) / 1000);
    if (r.head.stderr) {
      for (const line of r.head.stderr.replace(/\n$/, '').split('\n')) this.o.logs.push({ source: 'app', app: name, stream: 'stderr', line });
    }
    if (r.head.reason !== 'exit') this.o.logs.push({ source: 'app', app: name, stream: 'event', level: 'warn', line: `invoke: ${r.head.reason}${r.head.message ? `: ${r.head.message}` : ''} (exit ${r.head.exitCode})` });
    return r;
  }

  counts(): { running: number; stopped: number } {
    let running = 0;
    let stopped = 0;
    for (const a of this.o.desired.list()) {
      if (a.running) running++;
      else stopped++;
    }
    return { running, stopped };
  }
}
