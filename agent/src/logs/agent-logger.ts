import { pino, type Logger } from 'pino';
import type { LogRing } from './log-ring.js';

const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/**
 * The daemon's pino logger: JSON lines on stderr (journald keeps them), and every line at `info` or above also
 * into the log ring so `wasmedge_emit logs` shows agent events beside program output. Log volume is low (no
 * per-request lines at info), so parsing each line back here is cheap.
 */
export function createAgentLogger(level: string, ring: LogRing): Logger {
  const ringStream = {
    write(line: string): void {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        const fields: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(o)) if (!OMIT.has(k)) fields[k] = v;
        const app = typeof fields.app === 'string' ? fields.app : undefined;
        ring.push({
          source: 'agent',
          stream: 'event',
          level: pino.levels.labels[o.level as number] ?? String(o.level),
          line: typeof o.msg === 'string' ? o.msg : '',
          ts: typeof o.time === 'number' ? o.time : Date.now(),
          ...(app !== undefined ? { app } : {}),
          ...(Object.keys(fields).length > 0 ? { fields } : {}),
        });
      } catch {
        // not JSON: ignore; the stderr copy still has it
      }
    },
  };
  // The ring always gets agent events from `info` up, whatever the stderr level (journald may want only warnings).
  const streams: pino.StreamEntry[] = [{ level: 'info', stream: ringStream }];
  if (level !== 'silent') streams.push({ level: level as pino.Level, stream: pino.destination({ fd: 2, sync: false }) });
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
  const min = level === 'silent' || levels.indexOf(level) > levels.indexOf('info') ? 'info' : level;
  return pino({ name: 'agent', level: min }, pino.multistream(streams));
}
