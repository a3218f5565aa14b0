/** Engine front door: the interface every engine implements, and the default V8 engine. */
import { V8Engine, type V8EngineOptions } from './v8.js';
import type { Engine } from './types.js';

export * from './types.js';
export { V8Engine } from './v8.js';
export type { V8EngineOptions } from './v8.js';
export { declaredMemories, limitMemoryPages } from './memory-limit.js';
export type { LimitResult } from './memory-limit.js';

export type EngineName = 'v8';

export function createEngine(name: EngineName, options: V8EngineOptions = {}): Engine {
  switch (name) {
    case 'v8':
      return new V8Engine(options);
    default: {
      const unknown: never = name;
      throw new Error(`unknown engine ${String(unknown)}`);
    }
  }
}
