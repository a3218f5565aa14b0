#!/usr/bin/env node
import fs from 'node:fs';
import net from 'node:net';
import { Endpoint, PEER_STALE_MS, createRing, peerState, type RingLink } from '../channel/index.js';
import { MsgType } from '../protocol/index.js';
import { Side } from '../region/index.js';
import { createEngine, detectEngines, type Engine } from '../engine/index.js';
import { AgentError, toAgentError } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { StreamTransport } from '../transport/index.js';
import { parseRunnerConfig } from './config.js';
import { Runner } from './runner.js';

/**
 * The runner process: the prototype of the seL4-side component. It owns the shared region (it creates it, as
 * the seL4 system description would), serves one agent at a time over it, and/or listens on a Unix socket for
 * the stream transport. It prints READY on stdout once it can be reached, for supervisors and tests.
 */
async function main(): Promise<void> {
  const config = parseRunnerConfig(process.argv.slice(2));
  const logger = createLogger('runner');
  // Every engine this machine has is offered (apps pick one per deploy); the default is the configured one,
  // else WasmEdge when its CLI is installed, else V8.
  const available = detectEngines().filter((e) => e.available);
  const engines = new Map<string, Engine>(available.map((e) => [e.name, createEngine(e.name, { logger })]));
  const defaultEngine = config.engine ?? (engines.has('wasmedge') ? 'wasmedge' : 'v8');
  if (!engines.has(defaultEngine)) {
    throw new AgentError('AGT_ERR_CONFIG_INVALID', `engine ${defaultEngine} is not available here (found: ${available.map((e) => e.name).join(', ') || 'none'})`, { field: 'engine' });
  }
  logger.info({ engines: [...engines.keys()], defaultEngine }, 'engines');
  const runner = new Runner({ engines, defaultEngine, logger, maxModuleBytes: config.maxModuleBytes });
  const closers: Array<() => Promise<void>> = [];

  if (config.region) {
    const link: RingLink = createRing({ path: config.region, ringSize: config.ringSize, fileSize: config.regionSize, notify: config.notify, heartbeatThread: true });
    // Module chunks are copied into their assembly by a synchronous handler, and an ECHO body is handed straight
    // to send(): read both in place, no copy.
    link.transport.borrow = (type) => type === MsgType.MODULE_CHUNK || type === MsgType.ECHO;
    // ECHO's answer is its own bytes: the transport copies them ring to ring (the handler in runner.ts answers
    // the rest: bodies with a CRC, ECHOs behind queued sends, and every ECHO over a byte stream).
    link.transport.echo = { request: MsgType.ECHO, answer: MsgType.RESULT };
    const ep = new Endpoint({ transport: link.transport, role: 'runner', logger });
    runner.serve(ep);
    ep.start();
    // The agent's heartbeat word: when it stops moving for a second the agent is gone (killed, VM paused).
    let beat = { value: -1, at: performance.now(), alive: false };
    const watchdog = setInterval(() => {
      const peer = peerState(link.region, Side.Agent);
      const now = performance.now();
      if (peer.heartbeat !== beat.value) {
        if (!beat.alive && peer.attached) logger.info({ agentEpoch: peer.epoch }, 'agent heartbeat seen');
        beat = { value: peer.heartbeat, at: now, alive: peer.attached };
      } else if (beat.alive && now - beat.at > PEER_STALE_MS) {
        beat = { ...beat, alive: false };
        logger.warn({ agentEpoch: peer.epoch, staleMs: Math.round(now - beat.at) }, 'agent heartbeat lost');
        runner.sessionLost(ep, 'agent heartbeat lost');
      }
    }, 100);
    watchdog.unref();
    closers.push(async () => {
      clearInterval(watchdog);
      await ep.close('runner stopping');
      await link.close();
      if (!config.keepRegion) fs.rmSync(config.region!, { force: true });
    });
    logger.info({ region: config.region, ringSize: config.ringSize }, 'shared-memory channel ready');
  }
  if (config.socket) {
    fs.rmSync(config.socket, { force: true });
    const endpoints = new Set<Endpoint>();
    const server = net.createServer((sock) => {
      const ep = new Endpoint({ transport: new StreamTransport(sock), role: 'runner', logger });
      endpoints.add(ep);
      ep.onClose(() => endpoints.delete(ep));
      runner.serve(ep);
      ep.start();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.socket, () => resolve());
    });
    closers.push(async () => {
      server.close();
      await Promise.all([...endpoints].map((ep) => ep.close('runner stopping')));
      fs.rmSync(config.socket!, { force: true });
    });
    logger.info({ socket: config.socket }, 'stream channel ready');
  }

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'runner stopping');
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    await runner.close();
    for (const c of closers) await c().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.stdout.write('READY\n');
}

main().catch((err: unknown) => {
  const e = toAgentError(err, 'AGT_ERR_CONFIG_INVALID');
  process.stderr.write(`wasmedge-runner: ${e instanceof AgentError ? e.message : String(err)}\n`);
  process.exit(1);
});
