import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { STATE_FORMAT_VERSION, stateFileSchema, type AppSpec, type StateFile } from './app-spec.js';
import { sweepTemporaries, syncDir, writeFileAtomic } from './atomic-file.js';

/** How long markApplied() waits to batch its lazy write. */
const APPLIED_FLUSH_MS = 250;

/**
 * The desired state: every app the agent should keep deployed, persisted in `<stateDir>/state/apps.json`.
 *
 * Writes are whole-file atomic replacements (writeFileAtomic). They form one chain: a change waits for the
 * write that includes it, and changes made while a write is in flight are all carried by the next one
 * (group commit), so concurrent deploys do not pay one fsync each.
 *
 * `applied[name]` records the generation the runner was last confirmed to run. It is written lazily, off the
 * request path: after a crash it may be older than the truth, which only costs one redundant (hot, atomic)
 * redeploy at restart; it is never newer, so a spec the runner never received is never taken as applied.
 *
 * Invariant (kept by callers): a spec is put() only after its module's blob is durable in the store.
 */
export class DesiredState {
  readonly file: string;
  private readonly logger: Logger;
  private readonly apps = new Map<string, AppSpec>();
  private readonly applied = new Map<string, number>();
  /** The write in flight, and whether another must follow it. */
  private writing: Promise<void> | undefined;
  private dirty = false;
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushTimer: NodeJS.Timeout | undefined;
  writes = 0;

  private constructor(file: string, logger: Logger) {
    this.file = file;
    this.logger = logger;
  }

  static async open(stateDir: string, logger: Logger): Promise<DesiredState> {
    const dir = path.join(stateDir, 'state');
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await syncDir(stateDir);
    const ds = new DesiredState(path.join(dir, 'apps.json'), logger);
    const swept = await sweepTemporaries(ds.file);
    if (swept > 0) logger.warn({ removed: swept }, 'removed unfinished desired-state writes left by a crash');
    await ds.load();
    return ds;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new AgentError('AGT_ERR_STORE_IO', `cannot read desired state ${this.file}: ${(err as Error).message}`, { path: this.file });
    }
    let parsed: StateFile;
    try {
      const r = stateFileSchema.safeParse(JSON.parse(text));
      if (!r.success) {
        const issue = r.error.issues[0]!;
        throw new Error(`field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
      }
      parsed = r.data;
    } catch (err) {
      // Writes are atomic, so this is damage from outside; refusing to start beats forgetting every app.
      throw new AgentError(
        'AGT_ERR_STORE_IO',
        `desired state ${this.file} is damaged (${(err as Error).message}); restore it from a backup or move it away to start with no apps`,
        { path: this.file, rule: 'state-format' },
      );
    }
    for (const a of parsed.apps) this.apps.set(a.name, a);
    for (const [n, g] of Object.entries(parsed.applied)) if (this.apps.has(n)) this.applied.set(n, g);
    this.logger.info({ apps: this.apps.size, file: this.file }, 'desired state loaded');
  }

  get(name: string): AppSpec | undefined {
    return this.apps.get(name);
  }

  list(): AppSpec[] {
    return [...this.apps.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every digest an app refers to: roots the module store must not collect. */
  digests(): Set<string> {
    const s = new Set<string>();
    for (const a of this.apps.values()) {
      s.add(a.digest);
      if (a.pin) s.add(a.pin);
    }
    return s;
  }

  /** Records `spec` (replacing the app's previous one) and resolves once it is durable. */
  async put(spec: AppSpec): Promise<void> {
    const previous = this.apps.get(spec.name);
    const mine = Object.freeze({ ...spec });
    this.apps.set(spec.name, mine);
    try {
      await this.persist();
    } catch (err) {
      // The file still holds the old spec (writes are atomic): make memory agree, unless someone moved on.
      if (this.apps.get(spec.name) === mine) {
        if (previous) this.apps.set(spec.name, previous);
        else this.apps.delete(spec.name);
      }
      throw err;
    }
  }

  /** Forgets an app; resolves once durable. */
  async remove(name: string): Promise<boolean> {
    const previous = this.apps.get(name);
    if (!previous) return false;
    this.apps.delete(name);
    const applied = this.applied.get(name);
    this.applied.delete(name);
    try {
      await this.persist();
    } catch (err) {
      if (!this.apps.has(name)) {
        this.apps.set(name, previous);
        if (applied !== undefined) this.applied.set(name, applied);
      }
      throw err;
    }
    return true;
  }

  appliedGeneration(name: string): number | undefined {
    return this.applied.get(name);
  }

  /** The runner confirmed it runs `generation` of `name`; persisted lazily (see the class comment). */
  markApplied(name: string, generation: number): void {
    if (!this.apps.has(name) || this.applied.get(name) === generation) return;
    this.applied.set(name, generation);
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.persist().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'could not record applied generations'));
    }, APPLIED_FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Resolves when a write that started after this call has completed (group commit). */
  persist(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.dirty = true;
      if (!this.writing) this.writing = this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const batch = this.waiters;
      this.waiters = [];
      const snapshot: StateFile = {
        version: STATE_FORMAT_VERSION,
        apps: this.list(),
        applied: Object.fromEntries([...this.applied].filter(([n]) => this.apps.has(n))),
      };
      try {
        await writeFileAtomic(this.file, `${JSON.stringify(snapshot, null, 1)}\n`);
        this.writes++;
        for (const w of batch) w.resolve();
      } catch (err) {
        const e = new AgentError('AGT_ERR_STORE_IO', `could not write desired state ${this.file}: ${(err as Error).message}`, { path: this.file }, { cause: err });
        for (const w of batch) w.reject(e);
      }
    }
    this.writing = undefined;
  }

  /** Flushes a pending lazy write; for shutdown. */
  async close(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      await this.persist().catch(() => undefined);
    }
    await this.writing;
  }
}
