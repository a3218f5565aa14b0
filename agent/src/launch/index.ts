export { AGENT_MAIN, CLI_MAIN, LocalSystem, RUNNER_MAIN } from './local-system.js';
export type { CliResult, LocalSystemOptions } from './local-system.js';
