export { createRegionFile, loadLibc, mapFile, regionFileSize } from './mmap.js';
export type { Libc, Mapping } from './mmap.js';
