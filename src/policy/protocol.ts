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

/**
 * The attribute names Postfix sends (SMTPD_POLICY_README, Postfix 3.7-3.9). A connection's parser
 * expects each request's names in the order of the one before (Postfix always sends the same
 * order) and, when a line starts with the expected known name, uses this constant instead of
 * slicing the name out of the text: no string to make and hash per attribute, and nothing of the
 * received text kept alive by the remembered order.
 */
const POSTFIX_ATTRIBUTE_NAMES = new Map(
  [
    'request', 'protocol_state', 'protocol_name', 'helo_name', 'queue_id', 'sender', 'recipient', 'recipient_count',
    'client_address', 'client_name', 'reverse_client_name', 'instance', 'sasl_method', 'sasl_username', 'sasl_sender',
    'size', 'ccert_subject', 'ccert_issuer', 'ccert_fingerprint', 'ccert_pubkey_fingerprint', 'encryption_protocol',
    'encryption_cipher', 'encryption_keysize', 'etrn_domain', 'stress', 'client_port', 'policy_context',
    'server_address', 'server_port', 'compatibility_level', 'mail_version',
  ].map((name) => [name, name]),
);

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
 *
 * Attribute values are slices of the text of the whole chunk they arrived in, so in V8 a value of
 * 13+ characters keeps that text (up to a read's size) alive: whatever keeps a value beyond its
 * request should keep a copy.
 */
export class PolicyRequestParser {
  private readonly limits: Required<PolicyParserLimits>;
  /**
   * Bytes of the current unterminated line, kept undecoded so a UTF-8 character split across
   * reads is decoded whole once its line is complete.
   */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /**
   * The request being built. A prototype-less object, so an attribute named "__proto__" or
   * "constructor" is just data; handed out as is (no copy, no freeze: measured on the hot path).
   */
  private attrs: Record<string, string> = Object.create(null) as Record<string, string>;
  private attrLines = 0;
  /** The known attribute names of the previous request by line (see POSTFIX_ATTRIBUTE_NAMES). */
  private readonly nameOrder: (string | undefined)[] = [];
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
    if (this.partialBytes > 0) {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        this.keepPartial(chunk);
        return out;
      }
      this.partial.push(chunk.subarray(0, nl + 1));
      const line = Buffer.concat(this.partial, this.partialBytes + nl + 1);
      this.partial = [];
      this.partialBytes = 0;
      this.takeLines(line, 0, line.length, out);
      start = nl + 1;
    }
    // One toString for all complete lines: a toString per line was most of the parser's cost
    // (measured ~20 -> ~6 us per 29-attribute request). Ending at an LF byte never cuts a UTF-8
    // character in half; the bytes after it wait undecoded for the rest of their line.
    const end = chunk.lastIndexOf(0x0a) + 1;
    if (end > start) {
      this.takeLines(chunk, start, end, out);
      start = end;
    }
    if (start < chunk.length) this.keepPartial(chunk.subarray(start));
    return out;
  }

  /** True when bytes of an unfinished request are buffered (for logging a truncated close). */
  hasPartialRequest(): boolean {
    return this.partialBytes > 0 || this.attrLines > 0;
  }

  private keepPartial(bytes: Buffer): void {
    this.partialBytes += bytes.length;
    this.checkLineLength(this.partialBytes);
    this.checkRequestSize(this.requestBytes + this.partialBytes);
    this.partial.push(bytes);
  }

  /** Takes the lines in bytes[from, to), which ends with a newline; completed requests go to out. */
  private takeLines(bytes: Buffer, from: number, to: number, out: PolicyRequest[]): void {
    const text = bytes.toString('utf8', from, to);
    // Decoding never yields more UTF-16 units than bytes, and as many only when every unit comes
    // from one byte (ASCII, which is all Postfix sends in practice, or a lone invalid byte as
    // U+FFFD): then string offsets are byte offsets. Otherwise the limits, which are in bytes, are
    // measured between LF bytes: the k-th LF byte is the k-th '\n' of the text.
    const unitPerByte = text.length === to - from;
    let byteStart = from;
    let lineStart = 0;
    // First '=' at or after lineStart (text.length when none is left), searched again only once
    // passed, so lines without '=' cannot make the scan quadratic in the chunk size.
    let eq = -1;
    while (lineStart < text.length) {
      const nl = text.indexOf('\n', lineStart);
      let lineBytes = nl - lineStart;
      if (!unitPerByte) {
        const byteNl = bytes.indexOf(0x0a, byteStart);
        lineBytes = byteNl - byteStart;
        byteStart = byteNl + 1;
      }
      this.checkLineLength(lineBytes);
      this.requestBytes += lineBytes + 1;
      this.checkRequestSize(this.requestBytes);
      // Postfix ends lines with LF only; a CR before it comes from hand tests with telnet/nc.
      const end = nl > lineStart && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl;
      if (end === lineStart) {
        out.push(this.finishRequest());
        lineStart = nl + 1;
        continue;
      }
      this.attrLines++;
      if (this.attrLines > this.limits.maxAttributes) {
        this.fail('POLICY_ERR_REQUEST_TOO_LARGE', `policy request has more than ${this.limits.maxAttributes} attributes`);
      }
      if (eq < lineStart) {
        eq = text.indexOf('=', lineStart);
        if (eq < 0) eq = text.length;
      }
      if (eq === lineStart || eq >= end) {
        this.problem ??= eq === lineStart
          ? `attribute line ${this.attrLines} has an empty name`
          : `attribute line ${this.attrLines} has no "=": ${JSON.stringify(text.slice(lineStart, Math.min(end, lineStart + 64)))}`;
      } else {
        // A repeated name keeps the last value (types.ts contract).
        this.attrs[this.nameAt(text, lineStart, eq)] = text.slice(eq + 1, end);
      }
      lineStart = nl + 1;
    }
  }

  /** text[from, eq): the expected name of this line when it is that, else a slice (or its constant). */
  private nameAt(text: string, from: number, eq: number): string {
    const line = this.attrLines - 1;
    const expected = this.nameOrder[line];
    if (expected !== undefined && expected.length === eq - from && text.startsWith(expected, from)) return expected;
    const name = text.slice(from, eq);
    const known = POSTFIX_ATTRIBUTE_NAMES.get(name);
    if (line <= this.nameOrder.length) this.nameOrder[line] = known;
    return known ?? name;
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
