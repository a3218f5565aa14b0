export { Reconciler } from './reconciler.js';
export type { ConvergeReport, Trigger } from './reconciler.js';
