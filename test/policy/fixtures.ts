// Shared fixtures for the policy tests: a real Postfix 3.7 RCPT-stage request, its wire encoding,
// and a CheckContext builder. Not a suite (no .test suffix), imported by test/policy/**.
import type { CheckContext, PolicyRequest } from '../../src/policy/types.js';

/**
 * The 29 attributes Postfix 3.7 sends at RCPT, in its order (SMTPD_POLICY_README; 3.8 adds
 * compatibility_level and mail_version). Most are empty, as on a plain unauthenticated delivery.
 */
export const POSTFIX_37_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ['request', 'smtpd_access_policy'],
  ['protocol_state', 'RCPT'],
  ['protocol_name', 'ESMTP'],
  ['helo_name', 'mail.example.net'],
  ['queue_id', ''],
  ['sender', 'alice@example.net'],
  ['recipient', 'bob@example.org'],
  ['recipient_count', '0'],
  ['client_address', '192.0.2.10'],
  ['client_name', 'mail.example.net'],
  ['reverse_client_name', 'mail.example.net'],
  ['instance', '2f1c.6650a1b2.4d3e1.0'],
  ['sasl_method', ''],
  ['sasl_username', ''],
  ['sasl_sender', ''],
  ['size', '2048'],
  ['ccert_subject', ''],
  ['ccert_issuer', ''],
  ['ccert_fingerprint', ''],
  ['ccert_pubkey_fingerprint', ''],
  ['encryption_protocol', 'TLSv1.3'],
  ['encryption_cipher', 'TLS_AES_256_GCM_SHA384'],
  ['encryption_keysize', '256'],
  ['etrn_domain', ''],
  ['stress', ''],
  ['client_port', '53124'],
  ['policy_context', ''],
  ['server_address', '192.0.2.1'],
  ['server_port', '25'],
];

/** The Postfix 3.7 request as a record, with overrides. */
export function postfixRequest(overrides: Record<string, string> = {}): PolicyRequest {
  return { ...Object.fromEntries(POSTFIX_37_ATTRIBUTES), ...overrides };
}

/** Wire form of a request: name=value lines and the empty line that ends it. */
export function encodeRequest(request: PolicyRequest | ReadonlyArray<readonly [string, string]>): string {
  const pairs = Array.isArray(request) ? request : Object.entries(request);
  return `${pairs.map(([k, v]) => `${k}=${v}`).join('\n')}\n\n`;
}

/** A CheckContext around a request (defaults: RCPT Postfix request, 3 s budget from t=1000). */
export function contextFor(overrides: Record<string, string> = {}, nowMs = 1000): CheckContext {
  const request = postfixRequest(overrides);
  return {
    request,
    clientAddress: request.client_address ?? '',
    deadlineAtMs: nowMs + 3000,
    nowMs,
    record: true,
    memo: new Map(),
  };
}
