/** The commands that have a help page (kept here so the CLI test does not import the CLI's internals). */
export const COMMAND_HELP_FOR_TESTS = ['upload', 'run', 'ls', 'rm', 'deploy', 'apps', 'stop', 'start', 'undeploy', 'call', 'invoke', 'status', 'logs', 'metrics'] as const;
