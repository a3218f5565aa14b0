import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { AgentError, ERROR_CATALOGUE, errorFromJSON } from '../runner-proto/src/errors/index.js';
import { ROOT } from './helpers/paths.js';

const codes = Object.keys(ERROR_CATALOGUE);

test('the catalogue has a pinned number of codes, all AGT_ERR_*', (t) => {
  t.is(codes.length, 21);
  for (const c of codes) t.regex(c, /^AGT_ERR_[A-Z0-9_]+$/);
});

test('every code is documented in docs/errors.md with a how-to-solve column', (t) => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/errors.md'), 'utf8');
  for (const c of codes) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${c}\``));
    t.truthy(row, `${c} missing from docs/errors.md`);
    t.is(row!.split('|').filter((x) => x.trim() !== '').length, 4, `${c} row needs code, status, description, how to solve`);
    t.true(row!.includes(`| ${ERROR_CATALOGUE[c as keyof typeof ERROR_CATALOGUE].status} |`), `${c} status in docs matches`);
  }
});

test('AgentError survives JSON and is recognised across copies by its brand', (t) => {
  const e = new AgentError('AGT_ERR_POLICY', 'import section at byte 0x1a: nope', { rule: 'import-module', offset: 26 });
  const back = errorFromJSON(JSON.parse(JSON.stringify(e)));
  t.true(back instanceof AgentError);
  t.is(back.code, 'AGT_ERR_POLICY');
  t.is(back.details.offset, 26);
  t.is(back.status, 422);
  const lookalike = Object.assign(Object.create(null), { [Symbol.for('sel4-wasm-bridge.AgentError')]: true });
  t.true(lookalike instanceof AgentError);
  t.false(new Error('x') instanceof AgentError);
  t.is(errorFromJSON({ code: 'NOPE', message: 'm' }).code, 'AGT_ERR_INTERNAL');
});
