import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Suffix of in-progress writes; anything left with it after a crash is removed by sweepTemporaries(). */
const TMP_MARK = '.tmp-';

/**
 * Replaces `file` with `data` so that a crash at any instant leaves either the old content or the new, never a
 * mix: write a temporary file in the same directory, fsync it, rename it over the target (atomic within one
 * file system), then fsync the directory so the rename itself survives a power cut.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o640): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}${TMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Removes temporaries of `file` left by a crash mid-write (only one process owns a state directory). */
export async function sweepTemporaries(file: string): Promise<number> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}${TMP_MARK}`;
  let n = 0;
  for (const entry of await readdir(dir)) {
    if (!entry.startsWith(prefix)) continue;
    await rm(path.join(dir, entry), { force: true });
    n++;
  }
  return n;
}
