import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { AgentError } from '../../../runner-proto/src/errors/index.js';
import { writeFileAtomic } from '../state/atomic-file.js';

/**
 * Moves a refused file (and its sidecar and signature) to `<inbox>/rejected/`, with `NAME.reason.json` beside
 * it: the error's code, message and details, and when. A later rejection of the same name replaces both.
 * The reason is written atomically, after the moves, so whoever sees it can read it whole and finds the files moved.
 */
export async function quarantine(inbox: string, name: string, files: readonly string[], e: AgentError): Promise<string> {
  const dir = path.join(inbox, 'rejected');
  await mkdir(dir, { recursive: true });
  for (const f of files) {
    await rename(f, path.join(dir, path.basename(f))).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') await rm(f, { force: true });
    });
  }
  const reason = path.join(dir, `${name}.reason.json`);
  const body = { file: `${name}.wasm`, code: e.code, message: e.message, details: e.details, rejectedAt: new Date().toISOString() };
  await writeFileAtomic(reason, `${JSON.stringify(body, null, 2)}\n`, 0o644);
  return reason;
}
