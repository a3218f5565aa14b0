#!/usr/bin/env node
// First: sizes libuv's thread pool before any import can start it.
import './threadpool.js';
import { mkdir } from 'node:fs/promises';
import { AgentError, toAgentError } from '../../../runner-proto/src/errors/index.js';
import { ApiServer } from '../api/index.js';
import { loadAgentConfig, redactConfig } from '../config/index.js';
import { AgentCore } from '../core/index.js';
import type { Inbox } from '../inbox/index.js';
import { RunnerLink } from '../link/index.js';
import { LogRing, createAgentLogger } from '../logs/index.js';
import { DesiredState } from '../state/index.js';
import { ModuleStore } from '../store/index.js';
import { TrustStore } from '../trust/index.js';

/**
 * The agent daemon: store + checker + desired state + reconciler + runner link behind the API socket, and the
 * inbox when configured. Prints READY on stdout once serving (supervisors and tests wait for it).
 *
 * Signals: SIGTERM/SIGINT stop gracefully (apps keep running on the runner; a restarted agent re-adopts them),
 * SIGHUP re-reads the trust store's keys.
 */
async function main(): Promise<void> {
  const { config, checkOnly } = loadAgentConfig(process.argv.slice(2));
  if (checkOnly) {
    process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
    return;
  }
  const logs = new LogRing({ maxLines: config.logs.ringLines, maxBytes: config.logs.ringBytes });
  const logger = createAgentLogger(config.logs.level, logs);
  logger.info({ sources: config.source, stateDir: config.stateDir, runner: config.runner }, 'agent starting');

  const store = await ModuleStore.open(config.stateDir, { logger, maxModuleBytes: config.policy.maxModuleBytes });
  const desired = await DesiredState.open(config.stateDir, logger);
  const trust = new TrustStore(config.trust, logger);
  const link = new RunnerLink(config.runner, logger);
  const core = new AgentCore({
    store,
    link,
    desired,
    trust,
    policy: config.policy,
    logger,
    logs,
    appDefaults: config.apps,
    reconcileIntervalMs: config.reconcile.intervalMs,
    metrics: config.metrics.enabled ? { processMetrics: config.metrics.processMetrics } : false,
  });
  core.start();
  // The inbox module (and chokidar, which its watcher loads) is imported only by agents that have an inbox.
  let inbox: Inbox | undefined;
  if (config.inbox) {
    const { Inbox: InboxClass } = await import('../inbox/index.js');
    inbox = new InboxClass({ dir: config.inbox.dir, settleMs: config.inbox.settleMs, apps: core.apps, logger, ...(core.metrics ? { metrics: core.metrics } : {}) });
    // The directory exists at READY (writers may drop files at once); files that arrive before the watcher
    // is up are found by its initial scan.
    await mkdir(inbox.dir, { recursive: true, mode: 0o770 });
  }
  const api = new ApiServer({
    core,
    logger,
    socketPath: config.api.socket,
    socketMode: config.api.socketMode,
    ...(config.api.socketGroup !== undefined ? { socketGroup: config.api.socketGroup } : {}),
    ...(config.api.tcp && config.api.token ? { tcp: { host: config.api.tcp.host, port: config.api.tcp.port, token: config.api.token } } : {}),
    maxJsonBytes: config.api.maxJsonBytes,
    maxInvokeBytes: config.api.maxInvokeBytes,
    maxConcurrentUploads: config.api.maxConcurrentUploads,
    requestTimeoutMs: config.api.requestTimeoutMs,
    headersTimeoutMs: config.api.headersTimeoutMs,
    maxConnections: config.api.maxConnections,
    ...(inbox ? { inbox } : {}),
  });
  // READY only once the runner had its chance to answer (bounded): early requests then find it connected. A
  // runner that is not there yet is no reason to stay unready; the link keeps trying in the background. The
  // socket is bound meanwhile (requests that arrive wait for the link inside RunnerLink, bounded too).
  await Promise.all([
    link.connected(2000).catch((err: unknown) => logger.warn({ err: toAgentError(err).message }, 'runner not reachable yet; serving anyway')),
    api.listen(),
  ]);

  // A bug that escapes every handler: say so in the journal and exit; systemd restarts the agent, which
  // re-adopts the runner's apps (the desired state is on disk), rather than running on in an unknown state.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'uncaught exception; exiting');
    logger.flush();
    process.exit(70);
  });

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping');
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    await inbox?.close().catch(() => undefined);
    await api.close().catch(() => undefined);
    await core.close().catch(() => undefined);
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const n = trust.reload();
      logger.info({ keys: n }, 'SIGHUP: trust store reloaded');
    } catch (err) {
      logger.error({ err: toAgentError(err).message }, 'SIGHUP: trust store reload failed; keeping the old keys');
    }
  });
  if (api.tcpPort !== undefined) process.stdout.write(`TCP ${api.tcpPort}\n`);
  process.stdout.write('READY\n');
  // prom-client is loaded after READY when process metrics are on, else on the first scrape (the QEMU guest):
  // start-up does not pay for the module and the registry; what is counted before is replayed into it.
  if (config.metrics.processMetrics) core.metrics?.start().catch((err: unknown) => logger.error({ err: toAgentError(err).message }, 'metrics could not be loaded'));
  // The watcher starts after READY: its initial scan is work the first API request need not wait for.
  if (inbox) {
    const box = inbox;
    box.start().catch((err: unknown) => {
      logger.fatal({ err: toAgentError(err).message, dir: box.dir }, 'inbox could not start; exiting');
      logger.flush();
      process.exit(1);
    });
  }
}

function fatal(err: unknown): never {
  const e = toAgentError(err, 'AGT_ERR_CONFIG_INVALID');
  if (e instanceof AgentError && e.details.rule === 'help') {
    process.stdout.write(`${e.message}\n`);
    process.exit(0);
  }
  process.stderr.write(`wasmedge-agent: ${e.message}${e.code !== 'AGT_ERR_CONFIG_INVALID' ? ` [${e.code}]` : ''}\n`);
  process.exit(1);
}

main().catch(fatal);
