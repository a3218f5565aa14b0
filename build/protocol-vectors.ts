/*
 * Generates the test vectors of docs/protocol.md with the real TypeScript implementation.
 *
 *   node dist/build/protocol-vectors.js           print every vector's two blocks (markdown) to stdout
 *   node dist/build/protocol-vectors.js --write   rewrite the blocks in docs/protocol.md in place
 *   node dist/build/protocol-vectors.js --check   exit 1 if docs/protocol.md differs from what the code produces
 *
 * Each vector is a ```hex vector:NAME block and a ```json fields:NAME block (see test/helpers/vectors.ts); the
 * document's prose around them is left alone. test/protocol-vectors.test.ts checks the same thing byte by byte.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VECTORS, compute, findBlocks, renderFields, renderHex } from '../test/helpers/vectors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = path.join(ROOT, 'docs', 'protocol.md');

function rendered(): Map<string, { hex: string; fields: string }> {
  const out = new Map<string, { hex: string; fields: string }>();
  for (const v of VECTORS) {
    const c = compute(v);
    out.set(v.name, { hex: renderHex(v, c), fields: renderFields(c) });
  }
  return out;
}

function rewrite(doc: string, blocks: Map<string, { hex: string; fields: string }>): { doc: string; missing: string[]; stale: string[] } {
  const found = findBlocks(doc);
  const missing: string[] = [];
  const edits: Array<{ start: number; end: number; text: string }> = [];
  for (const [name, b] of blocks) {
    const h = found.hex.get(name);
    const f = found.fields.get(name);
    if (!h) missing.push(`hex vector:${name}`);
    else edits.push({ start: h.start, end: h.end, text: `${b.hex}\n` });
    if (!f) missing.push(`json fields:${name}`);
    else edits.push({ start: f.start, end: f.end, text: `${b.fields}\n` });
  }
  const stale = [...found.hex.keys(), ...found.fields.keys()].filter((n) => !blocks.has(n));
  edits.sort((a, b) => b.start - a.start);
  let out = doc;
  for (const e of edits) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return { doc: out, missing, stale: [...new Set(stale)] };
}

function main(): number {
  const mode = process.argv[2] ?? '';
  const blocks = rendered();
  if (mode === '') {
    for (const [name, b] of blocks) {
      process.stdout.write(`\`\`\`hex vector:${name}\n${b.hex}\n\`\`\`\n\n\`\`\`json fields:${name}\n${b.fields}\n\`\`\`\n\n`);
    }
    return 0;
  }
  if (mode !== '--write' && mode !== '--check') {
    process.stderr.write('usage: protocol-vectors [--write | --check]\n');
    return 2;
  }
  const doc = fs.readFileSync(DOC, 'utf8');
  const r = rewrite(doc, blocks);
  if (r.missing.length > 0) process.stderr.write(`docs/protocol.md lacks blocks: ${r.missing.join(', ')}\n`);
  if (r.stale.length > 0) process.stderr.write(`docs/protocol.md has blocks for unknown vectors: ${r.stale.join(', ')}\n`);
  if (mode === '--write') {
    if (r.doc !== doc) fs.writeFileSync(DOC, r.doc);
    process.stdout.write(r.doc !== doc ? 'docs/protocol.md: vectors rewritten\n' : 'docs/protocol.md: vectors already current\n');
    return r.missing.length > 0 || r.stale.length > 0 ? 1 : 0;
  }
  if (r.doc !== doc || r.missing.length > 0 || r.stale.length > 0) {
    process.stderr.write('docs/protocol.md: vectors differ from the code; run node dist/build/protocol-vectors.js --write\n');
    return 1;
  }
  process.stdout.write('docs/protocol.md: vectors current\n');
  return 0;
}

process.exitCode = main();
