import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Project root, from a compiled test in dist/test/ or dist/test/helpers/. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const EXAMPLES = path.join(ROOT, 'examples');
export const example = (name: string, file = name): string => path.join(EXAMPLES, name, `${file}.wasm`);
