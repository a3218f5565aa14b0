import { readFile } from 'node:fs/promises';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import { appSettingsSchema, type AppSettings } from '../apps/index.js';

/** Sidecars are small; anything bigger is a mistake, not options. */
const SIDECAR_MAX = 256 * 1024;

/** Reads NAME.json beside NAME.wasm: the app's settings (the same fields as a deploy). Absent: {}. */
export async function readSidecar(file: string): Promise<AppSettings> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > SIDECAR_MAX) throw new AgentError('AGT_ERR_TOO_LARGE', `sidecar ${file} is ${buf.length} bytes; expected at most ${SIDECAR_MAX}`, { path: file });
    text = buf.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGT_ERR_BAD_REQUEST', `sidecar ${file} is not valid JSON: ${(err as Error).message}`, { path: file });
  }
  const r = appSettingsSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    throw new AgentError('AGT_ERR_BAD_REQUEST', `sidecar ${file}: field ${field}: ${issue.message}${extra}`, { path: file, field });
  }
  return r.data;
}
