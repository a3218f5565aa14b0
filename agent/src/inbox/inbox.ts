import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import { AgentError, toAgentError, type ErrorCode } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import type { AppService, DeployOutcome } from '../apps/index.js';
import type { AgentMetrics } from '../metrics/index.js';
import { isValidName } from '../store/index.js';
import { quarantine } from './quarantine.js';
import { readSidecar } from './sidecar.js';

export interface InboxOptions {
  readonly dir: string;
  /** A file must keep its size and mtime this long before it is read (see the class comment). */
  readonly settleMs: number;
  readonly apps: AppService;
  readonly logger: Logger;
  readonly metrics?: AgentMetrics;
}

/** Refusals that are about the file: it goes to rejected/. Anything else (disk, internal) leaves it in place. */
const REJECT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AGT_ERR_NAME_INVALID',
  'AGT_ERR_TOO_LARGE',
  'AGT_ERR_WASM_MALFORMED',
  'AGT_ERR_WASM_INVALID',
  'AGT_ERR_POLICY',
  'AGT_ERR_DIGEST_MISMATCH',
  'AGT_ERR_SIGNATURE',
  'AGT_ERR_BAD_REQUEST',
  'AGT_ERR_RUN_LOAD',
  'AGT_ERR_CONFLICT',
]);

/** Editors' and copy tools' temporaries, and hidden files: never modules. */
function isScratch(base: string): boolean {
  return base.startsWith('.') || /(\.tmp|\.part|\.partial|\.swp|\.crdownload|~)$/i.test(base);
}

export type InboxEvent = { readonly name: string; readonly result: 'deployed' | 'unchanged' | 'pending' | 'rejected' | 'error'; readonly outcome?: DeployOutcome; readonly error?: AgentError };

/**
 * Watches one directory; `NAME.wasm` dropped or replaced there is checked and hot-deployed as app NAME.
 *
 *   inbox/NAME.wasm        the module (required); replacing it deploys the new version
 *   inbox/NAME.json        optional settings, the same fields as a deploy (kind, args, env, limits, pool, ...)
 *   inbox/NAME.wasm.sig    optional detached ed25519 signature (required when the agent requires signatures)
 *   inbox/rejected/        refused files, each with NAME.reason.json saying why
 *
 * Half-written files are never picked up, by two rules together:
 *   1. Scratch names are ignored: dot-files and *.tmp, *.part, *.partial, *.swp, *~. A writer that writes
 *      `.NAME.wasm.part` (or anywhere on the same file system) and renames it to NAME.wasm delivers it atomically
 *      (what `install`, `rsync` and `cp` to a dot-name then `mv` do). This is the recommended way.
 *   2. For writers that write NAME.wasm in place, a file is read only after its size and mtime stayed the same
 *      for `settleMs` (chokidar's awaitWriteFinish), and it is stat'ed again after reading: if it changed while
 *      being read it is left for the next change event. A writer that stalls longer than settleMs mid-file can
 *      still be caught half-way; its truncated module fails the checker and goes to rejected/ (nothing
 *      half-written is ever deployed), so use rule 1 for slow writers.
 * Write NAME.json and NAME.wasm.sig before NAME.wasm: the module's arrival is what triggers a deploy (a later
 * change to either also redeploys, which is a no-op when nothing changed).
 */
export class Inbox {
  readonly dir: string;
  private readonly o: InboxOptions;
  private watcher: FSWatcher | undefined;
  private readonly busy = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly listeners: Array<(e: InboxEvent) => void> = [];
  private closed = false;

  constructor(options: InboxOptions) {
    this.o = options;
    this.dir = path.resolve(options.dir);
  }

  /** For tests and the API: every file handled. */
  onEvent(listener: (e: InboxEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o770 });
    await mkdir(path.join(this.dir, 'rejected'), { recursive: true, mode: 0o770 });
    const rejected = path.join(this.dir, 'rejected');
    // Loaded here: an agent without an inbox does not pay for the watcher's modules.
    const { watch } = await import('chokidar');
    this.watcher = watch(this.dir, {
      depth: 0,
      ignoreInitial: false,
      persistent: true,
      awaitWriteFinish: { stabilityThreshold: this.o.settleMs, pollInterval: Math.max(20, Math.min(100, Math.floor(this.o.settleMs / 4))) },
      ignored: (p: string) => p !== this.dir && (p === rejected || p.startsWith(`${rejected}${path.sep}`) || isScratch(path.basename(p))),
    });
    const onFile = (p: string): void => {
      const base = path.basename(p);
      let name: string | undefined;
      if (base.endsWith('.wasm')) name = base.slice(0, -5);
      else if (base.endsWith('.wasm.sig')) name = base.slice(0, -9);
      else if (base.endsWith('.json') && !base.endsWith('.reason.json')) name = base.slice(0, -5);
      if (name === undefined || name === '') return;
      // Sidecar and signature changes redeploy only when the module is there.
      this.schedule(name, !base.endsWith('.wasm'));
    };
    this.watcher.on('add', onFile).on('change', onFile);
    this.watcher.on('unlink', (p: string) => {
      if (p.endsWith('.wasm')) this.o.logger.info({ file: p }, 'inbox: module file removed; the app keeps running (stop it through the API)');
    });
    this.watcher.on('error', (err: unknown) => this.o.logger.error({ err: String(err) }, 'inbox watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.o.logger.info({ dir: this.dir, settleMs: this.o.settleMs }, 'inbox watching');
  }

  private schedule(name: string, onlyIfModule: boolean): void {
    if (this.closed) return;
    if (this.busy.has(name)) {
      this.again.add(name);
      return;
    }
    const job = (async () => {
      do {
        this.again.delete(name);
        await this.handle(name, onlyIfModule).catch((err: unknown) => this.o.logger.error({ name, err: String(err) }, 'inbox: unexpected failure'));
        onlyIfModule = true;
      } while (this.again.has(name) && !this.closed);
    })().finally(() => this.busy.delete(name));
    this.busy.set(name, job);
  }

  private emit(e: InboxEvent): void {
    this.o.metrics?.inbox.inc({ result: e.result });
    for (const l of this.listeners) l(e);
  }

  private async handle(name: string, onlyIfModule: boolean): Promise<void> {
    const wasm = path.join(this.dir, `${name}.wasm`);
    const sidecar = path.join(this.dir, `${name}.json`);
    const sigFile = `${wasm}.sig`;
    let before;
    try {
      before = await stat(wasm);
    } catch {
      if (!onlyIfModule) this.o.logger.debug({ name }, 'inbox: module vanished before it was read');
      return;
    }
    if (!before.isFile()) return;
    const files = [wasm, sidecar, sigFile];
    try {
      if (!isValidName(name)) {
        throw new AgentError('AGT_ERR_NAME_INVALID', `inbox file ${name}.wasm: the app name ${JSON.stringify(name)} must be 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit`, { field: 'name' });
      }
      const bytes = await readFile(wasm);
      const after = await stat(wasm);
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || bytes.length !== after.size) {
        this.o.logger.info({ name }, 'inbox: module changed while being read; waiting for it to settle');
        return;
      }
      const settings = await readSidecar(sidecar);
      const signature = await readFile(sigFile).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      const outcome = await this.o.apps.deploy(name, settings, { kind: 'bytes', bytes, ...(signature ? { signature } : {}), nameModule: true });
      const result = outcome.unchanged ? 'unchanged' : outcome.applied ? 'deployed' : 'pending';
      if (result !== 'unchanged') this.o.logger.info({ name, digest: outcome.digest, previous: outcome.previous, applied: outcome.applied }, 'inbox: module deployed');
      this.emit({ name, result, outcome });
    } catch (err) {
      const e = toAgentError(err);
      if (REJECT.has(e.code)) {
        const reason = await quarantine(this.dir, name, files, e).catch((qe: unknown) => {
          this.o.logger.error({ name, err: String(qe) }, 'inbox: could not move the refused file to rejected/');
          return undefined;
        });
        this.o.logger.warn({ name, code: e.code, err: e.message, reason }, 'inbox: module rejected');
        this.emit({ name, result: 'rejected', error: e });
      } else {
        this.o.logger.error({ name, code: e.code, err: e.message }, 'inbox: could not deploy; the file stays for the next change');
        this.emit({ name, result: 'error', error: e });
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.close();
    await Promise.allSettled([...this.busy.values()]);
  }
}
