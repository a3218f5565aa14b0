import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../docs/benchmarks.md');

/**
 * Replaces (or appends) one section of docs/benchmarks.md, delimited by marker comments, so each benchmark
 * script regenerates only its own part from a real run.
 */
export function writeSection(id: string, markdown: string): string {
  const begin = `<!-- bench:${id}:begin -->`;
  const end = `<!-- bench:${id}:end -->`;
  let doc = fs.existsSync(DOC) ? fs.readFileSync(DOC, 'utf8') : '# Benchmarks\n\nEvery table here is written by the script named in it, from one run on this project\'s machine kind (2 vCPU, Debian 12, Node 20). Absolute times are noisy on a shared VM; compare the ratios, which come from peers measured in the same run.\n';
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  doc = i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  fs.mkdirSync(path.dirname(DOC), { recursive: true });
  fs.writeFileSync(DOC, doc);
  return DOC;
}
