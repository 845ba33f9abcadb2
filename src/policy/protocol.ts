// Postfix SMTPD access policy delegation protocol (SMTPD_POLICY_README): an incremental parser for
// `name=value` request blocks ended by an empty line, and the `action=...` reply formatter.
// Used by policy/server.ts only. It never decides anything and never touches sockets: it turns
// bytes into requests, or throws a PolicyError when the connection must be closed.
import { PolicyError } from '../util/errors.js';
import type { PolicyRequest } from './types.js';

/** Bounds on what one connection may send; exceeding any of them closes that connection. */
export interface PolicyParserLimits {
  /** Longest attribute line in bytes, newline excluded. Default 4096. */
  maxLineBytes?: number;
  /** Largest request (all its lines, newlines included) in bytes. Default 65536. */
  maxRequestBytes?: number;
  /** Most attribute lines in one request. Default 100 (Postfix 3.7 sends 29). */
  maxAttributes?: number;
}

export const DEFAULT_POLICY_PARSER_LIMITS: Readonly<Required<PolicyParserLimits>> = {
  maxLineBytes: 4096,
  maxRequestBytes: 64 * 1024,
  maxAttributes: 100,
};

/** The only request type Postfix sends to a policy service. */
const REQUEST_TYPE = 'smtpd_access_policy';

// Requests the parser returned but found malformed. A WeakMap keeps PolicyRequest a plain record
// (the shared type) while the server can still tell it must answer DUNNO without deciding.
const malformed = new WeakMap<PolicyRequest, string>();

/**
 * Why a request returned by `PolicyRequestParser.push` is malformed, or undefined when it is
 * well-formed. A malformed request is answered `action=DUNNO` (fail open) and logged; the
 * connection stays open.
 */
export function malformedReason(request: PolicyRequest): string | undefined {
  return malformed.get(request);
}

/**
 * Incremental parser for one connection. Requests may arrive split across any number of reads, or
 * several in one read; `push` returns every request completed by the chunk, in order.
 *
 * Throws PolicyError (and stays failed: every later push throws the same error) with:
 * - POLICY_ERR_LINE_TOO_LONG: a line longer than maxLineBytes (detected before its newline);
 * - POLICY_ERR_REQUEST_TOO_LARGE: a request over maxRequestBytes or maxAttributes;
 * - POLICY_ERR_MALFORMED: binary garbage (a NUL byte), which no Postfix ever sends.
 * A line without '=' is not thrown: the request is returned and flagged (see malformedReason).
 */
export class PolicyRequestParser {
  private readonly limits: Required<PolicyParserLimits>;
  /** Bytes of the current unterminated line. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Current request being assembled. */
  /**
   * The request being built. A prototype-less object, so an attribute named "__proto__" or
   * "constructor" is just data; handed out as is (no copy, no freeze: measured on the hot path).
   */
  private attrs: Record<string, string> = Object.create(null) as Record<string, string>;
  private attrLines = 0;
  private requestBytes = 0;
  private problem: string | undefined;
  private failure: PolicyError | undefined;

  constructor(limits: PolicyParserLimits = {}) {
    this.limits = { ...DEFAULT_POLICY_PARSER_LIMITS, ...limits };
    for (const [key, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 1) {
        throw new PolicyError('POLICY_ERR_BAD_LIMIT', `policy parser limit ${key} must be a positive integer, got ${value}`);
      }
    }
  }

  /** Feeds one chunk of bytes; returns the requests it completed. */
  push(chunk: Buffer): PolicyRequest[] {
    if (this.failure) throw this.failure;
    if (chunk.includes(0)) this.fail('POLICY_ERR_MALFORMED', 'NUL byte in policy request (binary garbage)');
    const out: PolicyRequest[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        this.partialBytes += chunk.length - start;
        this.checkLineLength(this.partialBytes);
        this.checkRequestSize(this.requestBytes + this.partialBytes);
        this.partial.push(chunk.subarray(start));
        break;
      }
      const piece = chunk.subarray(start, nl);
      const line = this.partial.length === 0 ? piece : Buffer.concat([...this.partial, piece]);
      this.partial = [];
      this.partialBytes = 0;
      start = nl + 1;
      this.checkLineLength(line.length);
      this.requestBytes += line.length + 1;
      this.checkRequestSize(this.requestBytes);
      const request = this.takeLine(line);
      if (request) out.push(request);
    }
    return out;
  }

  /** True when bytes of an unfinished request are buffered (for logging a truncated close). */
  hasPartialRequest(): boolean {
    return this.partialBytes > 0 || this.attrLines > 0;
  }

  private takeLine(raw: Buffer): PolicyRequest | undefined {
    // Postfix ends lines with LF only; a CR before it comes from hand tests with telnet/nc.
    const line = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    if (line.length === 0) return this.finishRequest();
    this.attrLines++;
    if (this.attrLines > this.limits.maxAttributes) {
      this.fail('POLICY_ERR_REQUEST_TOO_LARGE', `policy request has more than ${this.limits.maxAttributes} attributes`);
    }
    const text = line.toString('utf8');
    const eq = text.indexOf('=');
    if (eq <= 0) {
      this.problem ??= eq === 0
        ? `attribute line ${this.attrLines} has an empty name`
        : `attribute line ${this.attrLines} has no "=": ${JSON.stringify(text.slice(0, 64))}`;
      return undefined;
    }
    // A repeated name keeps the last value (types.ts contract).
    this.attrs[text.slice(0, eq)] = text.slice(eq + 1);
    return undefined;
  }

  private finishRequest(): PolicyRequest {
    const request: PolicyRequest = this.attrs;
    let problem = this.problem;
    if (problem === undefined) {
      if (this.attrLines === 0) problem = 'empty request (a blank line with no attributes)';
      else if (request.request !== REQUEST_TYPE) {
        problem = request.request === undefined
          ? 'missing request=smtpd_access_policy'
          : `unsupported request type ${JSON.stringify(request.request.slice(0, 64))}`;
      }
    }
    if (problem !== undefined) malformed.set(request, problem);
    this.attrs = Object.create(null) as Record<string, string>;
    this.attrLines = 0;
    this.requestBytes = 0;
    this.problem = undefined;
    return request;
  }

  private checkLineLength(bytes: number): void {
    if (bytes > this.limits.maxLineBytes) {
      this.fail('POLICY_ERR_LINE_TOO_LONG', `policy request line longer than ${this.limits.maxLineBytes} bytes`);
    }
  }

  private checkRequestSize(bytes: number): void {
    if (bytes > this.limits.maxRequestBytes) {
      this.fail('POLICY_ERR_REQUEST_TOO_LARGE', `policy request larger than ${this.limits.maxRequestBytes} bytes`);
    }
  }

  private fail(code: string, message: string): never {
    this.failure = new PolicyError(code, message);
    this.partial = [];
    this.attrs = Object.create(null) as Record<string, string>;
    throw this.failure;
  }
}

/**
 * The reply line for an action: `action=<action>` and the empty line that ends the reply.
 * Throws PolicyError POLICY_ERR_BAD_ACTION for an empty action or one with CR/LF/NUL, which would
 * inject protocol lines.
 */
export function formatReply(action: string): string {
  if (action.trim() === '' || /[\r\n\0]/.test(action)) {
    throw new PolicyError('POLICY_ERR_BAD_ACTION', `invalid policy action ${JSON.stringify(action.slice(0, 80))}`);
  }
  return `action=${action}\n\n`;
}
