import { verify } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../../runner-proto/src/errors/index.js';
import type { Logger } from '../../../runner-proto/src/log/index.js';
import { decodeSignature, parsePublicKey, type TrustedKey } from './keys.js';

export interface TrustPolicy {
  readonly keysDir?: string;
  readonly requireSignature: boolean;
}

/** What the signature check found: who signed, or that nothing was signed (allowed when not required). */
export type Verdict = { readonly signed: true; readonly keyId: string; readonly label: string } | { readonly signed: false };

const KEY_FILE = /\.(pem|pub|key)$/i;

function refused(message: string, rule: string, extra: Record<string, unknown> = {}): AgentError {
  return new AgentError('AGT_ERR_SIGNATURE', message, { rule, ...extra });
}

/**
 * The public keys that may sign modules, read from one directory. Signatures are ed25519 over the module's
 * bytes exactly as uploaded (what `openssl pkeyutl -sign -rawin -in m.wasm` produces), verified with Node's
 * built-in crypto. reload() re-reads the directory (SIGHUP): removing a key file revokes it for later deploys.
 */
export class TrustStore {
  readonly policy: TrustPolicy;
  private readonly logger: Logger;
  private keys: readonly TrustedKey[] = [];

  constructor(policy: TrustPolicy, logger: Logger) {
    this.policy = policy;
    this.logger = logger;
    this.reload();
  }

  /** Re-reads the key directory; a bad file is skipped and logged, never fatal (unless none is left and keys are required). */
  reload(): number {
    const dir = this.policy.keysDir;
    if (!dir) {
      this.keys = [];
      return 0;
    }
    let entries: string[];
    try {
      entries = fs.readdirSync(dir);
    } catch (err) {
      const e = new AgentError('AGT_ERR_CONFIG_INVALID', `cannot read trust.keysDir ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { field: 'trust.keysDir', path: dir });
      if (this.policy.requireSignature) throw e;
      this.logger.warn({ dir, err: e.message }, 'trust store unreadable; no keys loaded');
      this.keys = [];
      return 0;
    }
    const keys: TrustedKey[] = [];
    for (const entry of entries.sort()) {
      if (!KEY_FILE.test(entry)) continue;
      const file = path.join(dir, entry);
      let content: Buffer;
      try {
        if (!fs.statSync(file).isFile()) continue;
        content = fs.readFileSync(file);
      } catch (err) {
        this.logger.warn({ file, err: String(err) }, 'skipping unreadable key file');
        continue;
      }
      const k = parsePublicKey(content, entry);
      if (typeof k === 'string') this.logger.warn({ file, reason: k }, 'skipping key file');
      else if (!keys.some((x) => x.id === k.id)) keys.push(k);
    }
    this.keys = keys;
    this.logger.info({ dir, keys: keys.map((k) => `${k.label} ${k.id}`), requireSignature: this.policy.requireSignature }, 'trust store loaded');
    return keys.length;
  }

  list(): ReadonlyArray<{ id: string; label: string }> {
    return this.keys.map((k) => ({ id: k.id, label: k.label }));
  }

  /**
   * Checks a detached signature over `bytes`. No signature: refused when the policy requires one, else
   * `{signed: false}`. A signature that is present is always checked, and one that verifies under no trusted
   * key is refused whatever the policy (a bad signature is a red flag, not an absent one).
   */
  check(bytes: Uint8Array, signature: Uint8Array | string | undefined, what: string): Verdict {
    if (signature === undefined || (typeof signature === 'string' && signature.trim() === '') || (typeof signature !== 'string' && signature.length === 0)) {
      if (this.policy.requireSignature) {
        throw refused(`${what} is not signed; this agent requires a detached ed25519 signature by a trusted key (upload with --sig FILE, or put NAME.wasm.sig beside it)`, 'signature-required');
      }
      return { signed: false };
    }
    const sig = decodeSignature(signature);
    if (!sig) throw refused(`${what}: the signature is not 64 bytes of ed25519 (raw, base64 or hex)`, 'signature-format');
    if (this.keys.length === 0) throw refused(`${what} is signed but the agent trusts no keys (trust.keysDir ${this.policy.keysDir ?? 'is not set'})`, 'no-trusted-keys');
    for (const k of this.keys) {
      if (verify(null, bytes, k.key, sig)) return { signed: true, keyId: k.id, label: k.label };
    }
    throw refused(`${what}: the signature does not verify under any trusted key (${this.keys.length} loaded); the module was altered or signed by an unknown key`, 'signature-invalid', {
      trustedKeys: this.keys.length,
    });
  }
}
