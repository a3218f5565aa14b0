import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { fileOpsFor } from '../store/file-ops.js';
import { STATE_FORMAT_VERSION, stateFileSchema, type AppSpec, type StateFile } from './app-spec.js';
import { sweepTemporaries, syncDir } from './atomic-file.js';
import { SlotFile, type SlotScan } from './slot-file.js';

/** How long markApplied() waits to batch its lazy write. */
const APPLIED_FLUSH_MS = 250;

/** The desired state's file, and the JSON file of earlier versions (still imported: see DesiredState.open). */
export const STATE_FILE = 'apps.state';
export const LEGACY_STATE_FILE = 'apps.json';
const IMPORTED_SUFFIX = '.imported';

/**
 * The desired state: every app the agent should keep deployed, persisted in `<stateDir>/state/apps.state`.
 *
 * Each write stores the whole state (JSON, StateFile) as one copy in a two-slot file (slot-file.ts): one
 * in-place O_DSYNC write per change, the other slot keeping the previous copy until the new one is durable.
 * Writes form one chain: a change waits for the write that includes it, and changes made while a write is in
 * flight are all carried by the next one (group commit), so concurrent deploys do not pay one sync each.
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
  /** Absent until the first write creates the file. */
  private slots: SlotFile | undefined;
  private readonly apps = new Map<string, AppSpec>();
  private readonly applied = new Map<string, number>();
  /** The write in flight, and whether another must follow it. */
  private writing: Promise<void> | undefined;
  private dirty = false;
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushTimer: NodeJS.Timeout | undefined;
  writes = 0;
  /**
   * Writes run inline on the event loop (a memory file system, see FileOps): a write then costs less than a
   * thread-pool hop, so a caller starting other work beside it (a DEPLOY) should start that first.
   */
  readonly writesInline: boolean;

  private constructor(file: string, logger: Logger) {
    this.file = file;
    this.logger = logger;
    this.writesInline = fileOpsFor(path.dirname(file)).kind === 'inline';
  }

  /**
   * Loads `<stateDir>/state/apps.state`. A `state/apps.json` (the JSON file earlier versions kept, or one an
   * operator put there to replace the state by hand) is imported instead, written as the new state, and renamed
   * to `apps.json.imported`; a crash anywhere in between leaves it to be imported again at the next open.
   */
  static async open(stateDir: string, logger: Logger): Promise<DesiredState> {
    const dir = path.join(stateDir, 'state');
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await syncDir(stateDir);
    const ds = new DesiredState(path.join(dir, STATE_FILE), logger);
    const legacy = path.join(dir, LEGACY_STATE_FILE);
    let swept = await sweepTemporaries(ds.file);
    swept += await sweepTemporaries(legacy);
    if (swept > 0) logger.warn({ removed: swept }, 'removed unfinished desired-state writes left by a crash');
    let scan: SlotScan | undefined;
    try {
      scan = await SlotFile.read(ds.file);
    } catch (err) {
      throw new AgentError('AGT_ERR_STORE_IO', `cannot read desired state ${ds.file}: ${(err as Error).message}`, { path: ds.file });
    }
    const imported = await readLegacy(legacy);
    if (imported !== undefined) {
      ds.adopt(imported);
      // A damaged apps.state does not matter here: the import replaces it whole.
      if (scan?.newest !== undefined) ds.slots = SlotFile.resume(ds.file, { ...scan, newest: scan.newest });
      await ds.persist();
      await rename(legacy, `${legacy}${IMPORTED_SUFFIX}`);
      // Durable before anything is served: a rename rolled back by a power cut would import the old file again
      // over changes acknowledged since.
      await syncDir(dir);
      logger.warn({ apps: ds.apps.size, from: legacy, to: ds.file }, 'desired state imported from JSON');
      return ds;
    }
    if (scan !== undefined) {
      if (scan.newest === undefined) {
        const why = scan.problems.map((p, i) => `slot ${i}: ${p}`).join('; ');
        throw damaged(ds.file, `no intact copy: ${why}`);
      }
      if (scan.problems.some((p) => p !== undefined && p !== 'empty')) {
        logger.warn({ file: ds.file, problems: scan.problems, seq: scan.newest.seq }, 'desired state: one copy is damaged (a write cut short); using the other');
      }
      ds.adopt(parseState(ds.file, scan.newest.payload.toString('utf8')));
      ds.slots = SlotFile.resume(ds.file, { ...scan, newest: scan.newest });
    }
    logger.info({ apps: ds.apps.size, file: ds.file }, 'desired state loaded');
    return ds;
  }

  private adopt(parsed: StateFile): void {
    this.apps.clear();
    this.applied.clear();
    for (const a of parsed.apps) this.apps.set(a.name, a);
    for (const [n, g] of Object.entries(parsed.applied)) if (this.apps.has(n)) this.applied.set(n, g);
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
        const payload = Buffer.from(`${JSON.stringify(snapshot)}\n`);
        if (this.slots === undefined) this.slots = await SlotFile.create(this.file, payload);
        else await this.slots.write(payload);
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
    await this.slots?.close();
  }
}

function damaged(file: string, why: string): AgentError {
  // Writes never leave both copies bad, so this is damage from outside; refusing to start beats forgetting every app.
  return new AgentError('AGT_ERR_STORE_IO', `desired state ${file} is damaged (${why}); restore it from a backup or move it away to start with no apps`, {
    path: file,
    rule: 'state-format',
  });
}

function parseState(file: string, text: string): StateFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw damaged(file, (err as Error).message);
  }
  const r = stateFileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw damaged(file, `field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/** The JSON state file of earlier versions, or undefined when there is none. */
async function readLegacy(file: string): Promise<StateFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('AGT_ERR_STORE_IO', `cannot read desired state ${file}: ${(err as Error).message}`, { path: file });
  }
  return parseState(file, text);
}
