// One upstream exchange of the iterator with its fallbacks (iterator.ts calls it from exchange(),
// which merges identical in-flight queries): TC -> TCP (RFC 7766 s5), FORMERR/NOTIMP to EDNS ->
// without EDNS (RFC 6891 s7), a 0x20 case mismatch -> TCP, and when TCP cannot reach a server that
// breaks 0x20, UDP without 0x20. Timeouts and unreachable servers feed the infra cache.
import { MxError, describeError } from '../../util/errors.js';
import { randomizeCase } from '../wire/name.js';
import { RRClass, Rcode, type Message, type Name } from '../wire/types.js';
import type { IteratorDeps, IteratorStats, ResolutionState } from './iterator.js';
import { restoreCase } from './response-classifier.js';

/** Rcodes of a fallback answer that show the server works without EDNS (Unbound's choice). */
const ANSWER_RCODES = new Set<number>([Rcode.NOERROR, Rcode.NXDOMAIN, Rcode.YXDOMAIN]);

/** What an upstream exchange needs from its iterator. */
export interface UpstreamContext {
  deps: IteratorDeps;
  stats: IteratorStats;
}

/**
 * Sends one question to one server of `zone` (its timeouts count for that zone), with the fallbacks above, within the resolution's deadline and
 * upstream-query budget; null when the server gave no usable answer (timeout, unreachable, error).
 */
export async function sendWithFallbacks(ctx: UpstreamContext, address: string, zone: Name, name: Name, type: number, st: ResolutionState): Promise<Message | null> {
  const { infra, transport, clock, logger, config } = ctx.deps;
  const stats = ctx.stats;
  let edns = infra.ednsStatus(address) !== 'noedns';
  let tcp = false;
  let sent = config.useCapsForId ? randomizeCase(name) : name;
  let anyCase = !config.useCapsForId;
  /** TCP is being tried because the server changed the case of a 0x20 name over UDP. */
  let caseRetry = false;
  /** Asked again without EDNS after FORMERR or NOTIMP to this exchange's EDNS query. */
  let fellBack = false;
  for (let attempt = 0; attempt < 4; attempt++) {
    const remaining = st.deadlineAtMs - clock.nowMs();
    if (remaining <= 0 || st.upstreamQueries >= config.limits.maxUpstreamQueries) return null;
    st.upstreamQueries++;
    st.wentUpstream = true;
    stats.upstreamQueries++;
    const rto = infra.rtoMs(address);
    const intended = tcp ? Math.max(rto * 2, 1000) : rto;
    const timeoutMs = Math.max(1, Math.min(intended, remaining));
    const sentAt = clock.nowMs();
    try {
      const r = await transport.query({ address, port: config.upstreamPort }, { name: sent, type, class: RRClass.IN }, { tcp, edns, timeoutMs, anyCase });
      infra.recordRtt(address, r.rttMs, type);
      const m = r.message;
      if (m.flags.tc && !tcp) {
        stats.tcpRetries++;
        tcp = true; // RFC 7766 s5: a truncated UDP answer is retried over TCP
        continue;
      }
      // With or without an OPT in it: some servers (or boxes in front of them) that speak EDNS still
      // reject an OPT with FORMERR; Unbound asks them again without EDNS too (RFC 6891 s7).
      if (edns && (m.rcode === Rcode.FORMERR || m.rcode === Rcode.NOTIMP)) {
        stats.ednsFallbacks++;
        edns = false;
        fellBack = true;
        continue;
      }
      // The server is asked without EDNS from now on (for the infra TTL) only when the fallback got an
      // answer (as Unbound): not when it fails the same way without EDNS (FORMERR or NOTIMP to the
      // query itself), nor when EDNS was seen to work with it (a forged or one-off FORMERR).
      if (fellBack && ANSWER_RCODES.has(m.rcode) && infra.ednsStatus(address) !== 'ok') infra.setEdnsStatus(address, 'noedns');
      if (edns && m.edns) infra.setEdnsStatus(address, 'ok');
      if (sent !== name) restoreCase(m, name, sent);
      return m;
    } catch (err) {
      const code = err instanceof MxError ? err.code : '';
      if (code === 'DNS_ERR_CASE_MISMATCH') {
        // 0x20: the case did not come back intact; TCP cannot be spoofed off-path.
        stats.caseMismatches++;
        tcp = true;
        caseRetry = true;
        continue;
      }
      if (caseRetry && tcp && (code === 'DNS_ERR_TIMEOUT' || code === 'DNS_ERR_NETWORK')) {
        // A server that breaks 0x20 and cannot be reached over TCP (UDP-only behind a firewall):
        // asked once more over UDP without 0x20, as Unbound's caps fallback does, rather than
        // failing every name it serves. Its case then goes unchecked, as with use-caps-for-id off.
        logger.debug({ server: address, qname: name, qtype: type, err: code }, '0x20 case not kept and no TCP answer: asking again without 0x20');
        tcp = false;
        caseRetry = false;
        sent = name;
        anyCase = true;
        continue;
      }
      if (code === 'DNS_ERR_TIMEOUT' || code === 'DNS_ERR_NETWORK') {
        stats.upstreamTimeouts++;
        if (code === 'DNS_ERR_NETWORK') (st.unreachable ??= new Set()).add(address);
        const waitedMs = clock.nowMs() - sentAt;
        logger.debug({ server: address, qname: name, qtype: type, tcp, waitedMs, err: code }, 'upstream query got no answer');
        // One cut short by the client deadline does not back the RTO off (see recordTimeout).
        infra.recordTimeout(address, rto, type, waitedMs, code === 'DNS_ERR_TIMEOUT' && timeoutMs < intended, zone);
        return null;
      }
      logger.debug({ server: address, qname: name, err: describeError(err) }, 'upstream query failed');
      return null;
    }
  }
  return null;
}
