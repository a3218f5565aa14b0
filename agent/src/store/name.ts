import { AgentError } from '../../../runner-proto/src/errors/index.js';

export const NAME_MAX_LENGTH = 128;

/**
 * Names become file names under `names/`, so the rules are those of a safe single path segment:
 * 1-128 of `[A-Za-z0-9._-]`, starting with a letter or digit, and no `..` anywhere. Positions in messages
 * and in `details.offset` are 0-based indexes into the string.
 */
export function validateName(name: unknown): string {
  if (typeof name !== 'string') {
    throw nameError(`name must be a string, received ${name === null ? 'null' : typeof name}`, 'type');
  }
  if (name.length === 0) {
    throw nameError(`name is empty; expected 1-${NAME_MAX_LENGTH} characters of A-Z a-z 0-9 . _ -`, 'length');
  }
  if (name.length > NAME_MAX_LENGTH) {
    throw nameError(`name is ${name.length} characters long; expected at most ${NAME_MAX_LENGTH}`, 'length');
  }
  for (let i = 0; i < name.length; i++) {
    if (!isNameChar(name.charCodeAt(i))) {
      const ch = String.fromCodePoint(name.codePointAt(i) ?? 0);
      throw nameError(
        `name ${JSON.stringify(name)} has ${JSON.stringify(ch)} at index ${i}; expected only letters, digits, ".", "_" or "-"`,
        'charset',
        i,
      );
    }
  }
  if (!isAlnum(name.charCodeAt(0))) {
    throw nameError(`name ${JSON.stringify(name)} starts with ${JSON.stringify(name[0])}; expected a letter or digit first`, 'start', 0);
  }
  const dots = name.indexOf('..');
  if (dots !== -1) {
    throw nameError(`name ${JSON.stringify(name)} has ".." at index ${dots}; expected no two consecutive dots`, 'dotdot', dots);
  }
  return name;
}

export function isValidName(name: unknown): name is string {
  try {
    validateName(name);
    return true;
  } catch {
    return false;
  }
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isNameChar(c: number): boolean {
  return isAlnum(c) || c === 0x2e || c === 0x5f || c === 0x2d;
}

function nameError(message: string, rule: string, offset?: number): AgentError {
  const details: Record<string, unknown> = { field: 'name', rule };
  if (offset !== undefined) details.offset = offset;
  return new AgentError('AGT_ERR_NAME_INVALID', message, details);
}
