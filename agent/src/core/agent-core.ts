import { checkModule, describeModule, type CheckPolicy, type ModuleSummary } from '../check/index.js';
import type { LinkStatus, RunHandle, RunOutput, RunnerLink } from '../link/index.js';
import { ModuleStore, validateName, type NameRecord } from '../store/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';

export interface UploadResult {
  readonly name: string;
  readonly digest: string;
  readonly size: number;
  /** false when the store already held these bytes (re-upload is idempotent). */
  readonly created: boolean;
  readonly module: ModuleSummary;
}

export interface RunRequest {
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly limits?: { readonly timeMs?: number; readonly memoryPages?: number; readonly outputBytes?: number };
}

export interface AgentStatus {
  readonly runner: LinkStatus;
  readonly modules: number;
  readonly runsActive: number;
  readonly runsTotal: number;
  readonly uptimeSec: number;
}

/**
 * The agent's core: every surface (HTTP/WebSocket API, inbox, Nomad driver) calls these operations.
 * Data flows one way: check -> store -> runner link.
 */
export class AgentCore {
  readonly store: ModuleStore;
  readonly link: RunnerLink;
  private readonly policy: CheckPolicy;
  private readonly logger: Logger;
  private readonly startedAt = Date.now();
  private runsActive = 0;
  private runsTotal = 0;

  constructor(options: { store: ModuleStore; link: RunnerLink; policy: CheckPolicy; logger: Logger }) {
    this.store = options.store;
    this.link = options.link;
    this.policy = options.policy;
    this.logger = options.logger;
  }

  get maxModuleBytes(): number {
    return this.policy.maxModuleBytes;
  }

  /** Checks, then stores: a module that fails any check is never written. */
  async upload(bytes: Uint8Array, name: string): Promise<UploadResult> {
    validateName(name);
    const info = checkModule(bytes, this.policy);
    const put = await this.store.put(bytes);
    await this.store.setName(name, put.digest, { kind: info.kind });
    this.logger.info({ name, digest: put.digest, size: put.size, created: put.created, kind: info.kind }, 'module stored');
    return { name, digest: put.digest, size: put.size, created: put.created, module: describeModule(info) };
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

  /** Resolves a name (or digest), makes sure the runner holds the bytes, and starts a run. */
  async run(ref: string, req: RunRequest, output: RunOutput): Promise<RunHandle> {
    const rec = await this.store.resolve(ref);
    const digest = rec.digest;
    const name = 'name' in rec ? rec.name : digest.slice(7, 19);
    await this.link.ensureModule(digest, () => this.store.get(digest));
    const handle = await this.link.run(
      { digest, argv0: `${name}.wasm`, args: [...(req.args ?? [])], env: { ...(req.env ?? {}) }, limits: req.limits ?? {} },
      output,
    );
    this.runsActive++;
    this.runsTotal++;
    handle.exit.finally(() => {
      this.runsActive--;
    }).catch(() => undefined);
    return handle;
  }

  async status(): Promise<AgentStatus> {
    return {
      runner: this.link.status(),
      modules: (await this.store.list()).length,
      runsActive: this.runsActive,
      runsTotal: this.runsTotal,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }
}
