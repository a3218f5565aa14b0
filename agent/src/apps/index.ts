export { AppService } from './app-service.js';
export type { AppServiceOptions, AppStatus, AppView, DeployOutcome, ModuleSource, RunnerAppInfo } from './app-service.js';
export type { AppDefaults } from './app-options.js';
export { appSettingsSchema, callBody, deployBody } from './deploy-request.js';
export type { AppSettings, CallBody, DeployBody } from './deploy-request.js';
export { coerceArgs } from './coerce.js';
