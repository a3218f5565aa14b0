import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../../../runner-proto/src/errors/index.js';

/** Compiled entry points, found relative to this file inside dist/. */
const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const RUNNER_MAIN = path.join(DIST, 'runner-proto/src/runner/main.js');
export const AGENT_MAIN = path.join(DIST, 'agent/src/daemon/main.js');
export const CLI_MAIN = path.join(DIST, 'agent/src/cli/main.js');

export interface LocalSystemOptions {
  /** `ring`: shared memory in /dev/shm (the default); `stream`: a Unix socket between agent and runner. */
  readonly transport?: 'ring' | 'stream';
  /** Ring wake-ups on both sides (default futex: both processes share this kernel). */
  readonly notify?: 'polling' | 'futex' | 'socket';
  /** Keep using this directory (store survives restarts); default: a fresh temp dir removed by stop(). */
  readonly dir?: string;
  readonly logLevel?: string;
  readonly readyTimeoutMs?: number;
  readonly runnerArgs?: readonly string[];
  readonly agentArgs?: readonly string[];
  /** Extra environment for the agent (WASMEDGE_AGENT_* overrides, tokens). */
  readonly agentEnv?: NodeJS.ProcessEnv;
  /** Node flags for the agent process (e.g. --max-semi-space-size=2, as the systemd unit uses). */
  readonly agentNodeArgs?: readonly string[];
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Waits for a child to print READY on stdout, bounded; fails with what it printed on stderr. */
function waitReady(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    let stdout = '';
    const timer = setTimeout(() => {
      cleanup();
      reject(new AgentError('AGT_ERR_TIMEOUT', `${what} not ready within ${timeoutMs} ms: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    const onOut = (c: Buffer): void => {
      stdout += c.toString();
      if (stdout.includes('READY\n')) {
        cleanup();
        resolve(stdout);
      }
    };
    const onErr = (c: Buffer): void => {
      stderr += c.toString();
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new AgentError('AGT_ERR_INTERNAL', `${what} exited with ${code} before it was ready: ${stderr.slice(-2000)}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals, timeoutMs = 5000): Promise<number | null> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child?.exitCode ?? null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill(signal);
  });
}

/**
 * A runner and an agent on this machine, connected through a real /dev/shm region (or a Unix socket): what the
 * demo, the integration tests and the benchmarks start. Every wait is bounded; stop() leaves no process, socket
 * or /dev/shm file behind.
 */
export class LocalSystem {
  readonly dir: string;
  readonly region: string;
  readonly runnerSocket: string;
  readonly agentSocket: string;
  readonly storeDir: string;
  readonly transport: 'ring' | 'stream';
  private readonly ownsDir: boolean;
  private readonly options: LocalSystemOptions;
  runner: ChildProcess | undefined;
  agent: ChildProcess | undefined;
  /** Everything the children logged, for a failing test to show. */
  logs = '';
  /** The agent's TCP port when it was started with --tcp. */
  tcpPort: number | undefined;

  constructor(options: LocalSystemOptions = {}) {
    this.options = options;
    this.transport = options.transport ?? 'ring';
    this.ownsDir = options.dir === undefined;
    this.dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'wasm-bridge-'));
    const tag = `${process.pid}-${path.basename(this.dir)}`;
    this.region = `/dev/shm/wasm-bridge-${tag}`;
    this.runnerSocket = path.join(this.dir, 'runner.sock');
    this.agentSocket = path.join(this.dir, 'agent.sock');
    this.storeDir = path.join(this.dir, 'store');
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, LOG_LEVEL: this.options.logLevel ?? process.env.LOG_LEVEL ?? 'warn' };
  }

  private capture(child: ChildProcess, tag: string): void {
    child.stderr?.on('data', (c: Buffer) => {
      this.logs += `[${tag}] ${c.toString()}`;
      if (this.logs.length > 1_000_000) this.logs = this.logs.slice(-500_000);
    });
  }

  async startRunner(): Promise<void> {
    const args = this.transport === 'ring' ? ['--region', this.region, '--notify', this.options.notify ?? 'futex'] : ['--socket', this.runnerSocket];
    this.runner = spawn(process.execPath, [RUNNER_MAIN, ...args, ...(this.options.runnerArgs ?? [])], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.capture(this.runner, 'runner');
    await waitReady(this.runner, 'runner', this.options.readyTimeoutMs ?? 15_000);
  }

  async startAgent(): Promise<void> {
    const link = this.transport === 'ring' ? ['--region', this.region, '--notify', this.options.notify ?? 'futex'] : ['--runner-socket', this.runnerSocket];
    this.agent = spawn(process.execPath, [...(this.options.agentNodeArgs ?? []), AGENT_MAIN, '--socket', this.agentSocket, '--store', this.storeDir, ...link, ...(this.options.agentArgs ?? [])], {
      env: { ...this.env(), ...(this.options.agentEnv ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.capture(this.agent, 'agent');
    const out = await waitReady(this.agent, 'agent', this.options.readyTimeoutMs ?? 15_000);
    const m = /^TCP (\d+)$/m.exec(out);
    this.tcpPort = m ? Number(m[1]) : undefined;
  }

  /** SIGKILLs the runner and starts a new one on the same region (or socket); resolves once it is READY. */
  async restartRunner(): Promise<void> {
    await stopChild(this.runner, 'SIGKILL');
    await this.startRunner();
  }

  async start(): Promise<this> {
    await this.startRunner();
    await this.startAgent();
    return this;
  }

  /** Runs `wasmedge_emit` against this agent; bounded by timeoutMs. */
  cli(args: readonly string[], options: { timeoutMs?: number; stdin?: string } = {}): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI_MAIN, '--socket', this.agentSocket, ...args], { env: this.env(), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new AgentError('AGT_ERR_TIMEOUT', `wasmedge_emit ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms`));
      }, options.timeoutMs ?? 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(options.stdin ?? '');
    });
  }

  killAgent(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    return stopChild(this.agent, signal);
  }

  killRunner(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    return stopChild(this.runner, signal);
  }

  /** Graceful stop (SIGTERM, then SIGKILL after 5 s), then removes what this system created. */
  async stop(): Promise<{ agentExit: number | null; runnerExit: number | null }> {
    const agentExit = await stopChild(this.agent, 'SIGTERM');
    const runnerExit = await stopChild(this.runner, 'SIGTERM');
    fs.rmSync(this.region, { force: true });
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
    return { agentExit, runnerExit };
  }
}
