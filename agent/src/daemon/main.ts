#!/usr/bin/env node
import { toAgentError } from '../../../runner-proto/src/errors/index.js';
import { createLogger } from '../../../runner-proto/src/log/index.js';
import { ApiServer } from '../api/index.js';
import { AgentCore } from '../core/index.js';
import { RunnerLink } from '../link/index.js';
import { ModuleStore } from '../store/index.js';
import { parseAgentConfig } from './config.js';

/** The agent daemon: store + checker + runner link behind the API socket. Prints READY once serving. */
async function main(): Promise<void> {
  const config = parseAgentConfig(process.argv.slice(2));
  const logger = createLogger('agent');
  const store = await ModuleStore.open(config.store, { logger, maxModuleBytes: config.policy.maxModuleBytes });
  const link = new RunnerLink(config.runner, logger);
  link.start();
  const core = new AgentCore({ store, link, policy: config.policy, logger });
  const api = new ApiServer({ core, logger, socketPath: config.socket, socketMode: config.socketMode });
  await api.listen();

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping');
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    await api.close().catch(() => undefined);
    await link.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.stdout.write('READY\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`wasmedge-agent: ${toAgentError(err, 'AGT_ERR_CONFIG_INVALID').message}\n`);
  process.exit(1);
});
