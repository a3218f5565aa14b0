import fs from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function looksLikeFile(ref: string): boolean {
  return ref.endsWith('.wasm') || ref.includes('/') ? fs.existsSync(ref) : false;
}

export function nameFromFile(file: string): string {
  return path.basename(file).replace(/\.wasm$/i, '');
}

export function readFileOrFail(file: string, what = 'file'): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new AgentError('AGT_ERR_NOT_FOUND', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { path: file });
  }
}

/** The signature to send: --sig FILE, else FILE.sig beside the module when present. Sent as base64 text. */
export function signatureFor(moduleFile: string | undefined, sigFile: string | undefined): string | undefined {
  const file = sigFile ?? (moduleFile && fs.existsSync(`${moduleFile}.sig`) ? `${moduleFile}.sig` : undefined);
  if (file === undefined) return undefined;
  const raw = readFileOrFail(file, 'signature');
  return raw.length === 64 ? raw.toString('base64') : raw.toString('utf8').trim();
}

export interface Progress {
  update(sent: number): void;
  stop(): void;
}

/** A progress bar on stderr for large uploads on a terminal; nothing otherwise (scripts, --json, small files). */
export async function progressFor(label: string, total: number, json: boolean): Promise<Progress | undefined> {
  if (json || !process.stderr.isTTY || total < 1024 * 1024) return undefined;
  const { SingleBar, Presets } = (await import('cli-progress')).default;
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} KiB | {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    Presets.shades_classic,
  );
  bar.start(Math.ceil(total / 1024), 0);
  return { update: (sent) => bar.update(Math.ceil(sent / 1024)), stop: () => bar.stop() };
}

export function shortDigest(d: string): string {
  return d.slice(0, 19);
}

export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}
