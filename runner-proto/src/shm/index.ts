export { createRegionFile, mapFile, regionFileSize } from './mmap.js';
export type { Mapping } from './mmap.js';
