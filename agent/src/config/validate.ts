import fs from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { AgentConfigData } from './schema.js';

function invalid(field: string, message: string): AgentError {
  return new AgentError('AGT_ERR_CONFIG_INVALID', `config ${field}: ${message}`, { field, rule: 'cross-field' });
}

function inside(child: string, parent: string): boolean {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Every rule that involves more than one field, in one place; messages name both fields. Also resolves the
 * TCP token from its file (returned, so the frozen config holds it and the file is read once).
 */
export function validate(c: AgentConfigData): { token?: string } {
  let token: string | undefined;
  const tcp = c.api.tcp;
  if (tcp) {
    if (tcp.token !== undefined && tcp.tokenFile !== undefined) {
      throw invalid('api.tcp.token', 'give api.tcp.token or api.tcp.tokenFile, not both');
    }
    if (tcp.token === undefined && tcp.tokenFile === undefined) {
      throw invalid('api.tcp', 'the TCP listener needs a bearer token: set api.tcp.tokenFile (or $WASMEDGE_AGENT_TOKEN); it is never opened without one');
    }
    if (tcp.tokenFile !== undefined) {
      let st: fs.Stats;
      try {
        st = fs.statSync(tcp.tokenFile);
      } catch (err) {
        throw invalid('api.tcp.tokenFile', `cannot read ${tcp.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      if ((st.mode & 0o004) !== 0) {
        throw invalid('api.tcp.tokenFile', `${tcp.tokenFile} is readable by every user (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
      }
      token = fs.readFileSync(tcp.tokenFile, 'utf8').trim();
      if (token.length < 16) throw invalid('api.tcp.tokenFile', `${tcp.tokenFile} holds ${token.length} characters; a bearer token needs at least 16`);
    } else token = tcp.token;
  }
  if (c.trust.requireSignature && c.trust.keysDir === undefined) {
    throw invalid('trust.requireSignature', 'requiring signatures needs trust.keysDir (the public keys that may sign)');
  }
  if (c.inbox) {
    if (inside(c.stateDir, c.inbox.dir)) throw invalid('inbox.dir', `${c.inbox.dir} contains stateDir ${c.stateDir}; give the inbox its own directory`);
    for (const sub of ['blobs', 'names', 'tmp', 'state']) {
      if (inside(c.inbox.dir, path.join(c.stateDir, sub))) throw invalid('inbox.dir', `${c.inbox.dir} is inside the store (stateDir/${sub}); use e.g. ${path.join(c.stateDir, 'inbox')}`);
    }
  }
  if (inside(c.api.socket, path.join(c.stateDir, 'blobs')) || inside(c.api.socket, path.join(c.stateDir, 'names'))) {
    throw invalid('api.socket', `${c.api.socket} is inside the module store (stateDir ${c.stateDir})`);
  }
  if (c.apps.pool.min > c.apps.pool.max) throw invalid('apps.pool.min', `${c.apps.pool.min} is above apps.pool.max ${c.apps.pool.max}`);
  for (const [i, root] of c.apps.preopenRoots.entries()) {
    if (inside(c.stateDir, root)) throw invalid(`apps.preopenRoots.${i}`, `${root} contains stateDir ${c.stateDir}: apps could read or rewrite the module store`);
  }
  if (c.api.maxInvokeBytes > c.policy.maxModuleBytes) {
    throw invalid('api.maxInvokeBytes', `${c.api.maxInvokeBytes} exceeds policy.maxModuleBytes ${c.policy.maxModuleBytes}; invoke input is bounded by the module limit too`);
  }
  return token === undefined ? {} : { token };
}
