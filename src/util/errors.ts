// Typed errors with a stable code per area. Third-party errors are wrapped (with `cause`) at one
// boundary each; NXDOMAIN, NODATA and "not listed" are values, never errors.

export type ErrorArea = 'DNS' | 'POLICY' | 'STORE' | 'CONFIG' | 'REPL' | 'CLI';

/** Base class: `code` is stable and documented, the message is for humans. */
export class MxError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class DnsError extends MxError {}
export class PolicyError extends MxError {}
export class StoreError extends MxError {}
export class ConfigError extends MxError {
  /** 1-based line in the config file when the problem comes from one. */
  readonly line: number | undefined;
  readonly key: string | undefined;
  /** For a repeatable key: which of its values (0-based) the problem is about. */
  readonly index: number | undefined;
  constructor(code: string, message: string, opts: { key?: string; line?: number; index?: number; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.key = opts.key;
    this.line = opts.line;
    this.index = opts.index;
  }
}

/** Human description of any thrown value, for log lines. */
export function describeError(err: unknown): string {
  if (err instanceof MxError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
