// The configuration schema: every key, its type, default and meaning, in one table that drives the
// file parser, the `serve` flags and the documented example file. Pure data plus value parsers.
// Keys are the flag names (`dns-listen: 127.0.0.1:53` in the file is `--dns-listen 127.0.0.1:53`).

export type ValueKind = 'string' | 'path' | 'int' | 'bool' | 'size' | 'enum' | 'endpoint' | 'cidr' | 'name' | 'list-spec' | 'duration';

export interface KeyDef {
  key: string;
  kind: ValueKind;
  /** Repeatable: each occurrence (file line or flag) adds one value. */
  list?: boolean;
  default: unknown;
  /** For 'int' and 'size'. */
  min?: number;
  max?: number;
  /** For 'enum'. */
  choices?: readonly string[];
  /**
   * For 'cidr': refuse a network written with host bits set ("192.0.2.25/24"), as Postfix does in
   * its tables, instead of widening it to the network. For keys that grant trust.
   */
  refuseHostBits?: boolean;
  /** For lists: the empty list (one empty value) is refused, as for listeners that must listen somewhere. */
  nonEmptyList?: boolean;
  /** For 'string': an empty value is valid (written `key: ""` in the file, `--key ''` as a flag). */
  emptyAllowed?: boolean;
  /** For 'path': an empty value is refused (the key has no "empty means the default" reading). */
  nonEmptyPath?: boolean;
  /** For 'string': what is wrong with a value, said for that value; undefined when it is valid. */
  problemOf?: (value: string) => string | undefined;
  /** For 'string': the value must match; `patternHint` completes "... is not <hint>" in the error. */
  pattern?: RegExp;
  patternHint?: string;
  /** For 'duration': the unit of a bare number ('s' or 'd', as postgrey's flags); the value is kept in seconds. */
  unit?: 's' | 'd';
  group: 'general' | 'dns' | 'limits' | 'policy' | 'lists' | 'greylist' | 'replication';
  description: string;
}

/** The schema. Order here is the order of the example file and of `--help`. */
export const SCHEMA: readonly KeyDef[] = [
  { key: 'data-dir', kind: 'path', nonEmptyPath: true, default: './data', group: 'general', description: 'Folder for the LMDB greylist store and other state.' },
  { key: 'log-level', kind: 'enum', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', group: 'general', description: 'Log level of the JSON log on stdout.' },
  { key: 'control-socket', kind: 'path', default: '', group: 'general', description: 'Unix socket of the local control channel used by `mxsentry cache|stats|...` (mode 0660, owner and group of the daemon); empty: <data-dir>/control.sock.' },
  { key: 'metrics-listen', kind: 'endpoint', default: '', group: 'general', description: 'Address:port of the Prometheus text endpoint (GET /metrics), e.g. 127.0.0.1:9153; empty: off.' },
  { key: 'metrics-allow', kind: 'cidr', list: true, default: ['127.0.0.0/8', '::1/128'], group: 'general', description: 'Networks allowed to read the metrics endpoint; everyone else gets 403. Repeatable.' },

  { key: 'dns-listen', kind: 'endpoint', list: true, nonEmptyList: true, default: ['127.0.0.1:53', '[::1]:53'], group: 'dns', description: 'Address:port for DNS over UDP and TCP (IPv6 as [::1]:53). Repeatable.' },
  { key: 'allow', kind: 'cidr', list: true, default: ['127.0.0.0/8', '::1/128'], group: 'dns', description: 'Networks allowed to query (recursion) besides loopback (127.0.0.0/8, ::1), which stays allowed as in Unbound unless a line names a loopback network of that family; everyone else gets REFUSED. Repeatable.' },
  { key: 'root-hints', kind: 'path', default: '', group: 'dns', description: 'Root hints file (named.root format); empty: zones/named.root shipped with mxsentry.' },
  { key: 'local-zones-file', kind: 'path', default: '', group: 'dns', description: 'Unbound-style local-zone/local-data file; empty: zones/local-zones.conf shipped with mxsentry.' },
  { key: 'no-default-zone', kind: 'name', list: true, default: [], group: 'dns', description: 'Turn off one built-in local zone (e.g. test. or home.arpa.), like Unbound\'s "nodefault". Repeatable.' },
  { key: 'query-loopback', kind: 'bool', default: false, group: 'dns', description: 'Allow upstream servers on 127.0.0.0/8 and ::1 (Unbound: do-not-query-localhost: no).' },
  { key: 'do-ip4', kind: 'bool', default: true, group: 'dns', description: 'Use IPv4 for upstream queries.' },
  { key: 'do-ip6', kind: 'bool', default: true, group: 'dns', description: 'Use IPv6 for upstream queries.' },
  { key: 'qname-minimisation', kind: 'enum', choices: ['off', 'relaxed', 'strict'], default: 'relaxed', group: 'dns', description: 'RFC 9156 QNAME minimisation; relaxed falls back to the full name when servers break.' },
  { key: 'no-minimisation-zone', kind: 'name', list: true, default: [], group: 'dns', description: 'Zones whose servers get the whole name: names below them are minimised only down to the zone (the DNSBL/DNSWL zones are added automatically). Repeatable.' },
  { key: 'use-caps-for-id', kind: 'bool', default: true, group: 'dns', description: '0x20 case randomisation of upstream query names, TCP retry on mismatch (UDP without 0x20 when TCP fails).' },
  { key: 'upstream-port', kind: 'int', min: 1, max: 65535, default: 53, group: 'dns', description: 'Destination port of upstream queries (for labs and tests; keep 53).' },
  { key: 'cache-size', kind: 'size', min: 1 << 20, max: 64 * 1024 ** 3, default: 64 << 20, group: 'dns', description: 'Byte budget of the RRset and negative cache (suffixes k, m, g).' },
  { key: 'packet-cache-size', kind: 'size', min: 0, max: 64 * 1024 ** 3, default: 16 << 20, group: 'dns', description: 'Byte budget of the encoded-answer cache for the hot path (0 turns it off).' },
  { key: 'cache-min-ttl', kind: 'int', min: 0, max: 86400, default: 0, group: 'dns', description: 'Lower TTL clamp for cached records, seconds (raises TTL 0 records too, as Unbound does; 0: TTL 0 records are not cached).' },
  { key: 'cache-max-ttl', kind: 'int', min: 1, max: 604800, default: 86400, group: 'dns', description: 'Upper TTL clamp for cached records, seconds.' },
  { key: 'cache-max-negative-ttl', kind: 'int', min: 0, max: 86400, default: 3600, group: 'dns', description: 'Upper TTL clamp for NXDOMAIN/NODATA (RFC 2308), seconds.' },
  { key: 'serve-expired', kind: 'bool', default: true, group: 'dns', description: 'RFC 8767: answer from expired data when fresh resolution fails (never for DNSBL/DNSWL zones).' },
  { key: 'serve-expired-ttl', kind: 'int', min: 0, max: 604800, default: 86400, group: 'dns', description: 'How long past expiry data may still be served stale, seconds.' },
  { key: 'serve-expired-reply-ttl', kind: 'int', min: 0, max: 3600, default: 30, group: 'dns', description: 'TTL in stale answers, seconds.' },
  { key: 'serve-expired-client-timeout', kind: 'int', min: 0, max: 30000, default: 1800, group: 'dns', description: 'Milliseconds after which a slow resolution is answered from stale data (0: only on failure).' },
  { key: 'prefetch', kind: 'bool', default: true, group: 'dns', description: 'Refresh names hit repeatedly shortly before they expire.' },
  { key: 'prefetch-rate', kind: 'int', min: 1, max: 100000, default: 100, group: 'dns', description: 'Most prefetches started per second.' },
  { key: 'so-rcvbuf', kind: 'size', min: 0, max: 1 << 30, default: 0, group: 'dns', description: 'Receive buffer of each DNS UDP listener (SO_RCVBUF, as Unbound\'s so-rcvbuf), e.g. 4m: room for bursts of queries while the daemon is busy, instead of kernel drops; 0: the OS default. Forced past net.core.rmem_max where the daemon may (root or CAP_NET_ADMIN, as Unbound; needs the native UDP module), else capped at it; a warning says when it gave less.' },
  { key: 'so-sndbuf', kind: 'size', min: 0, max: 1 << 30, default: 0, group: 'dns', description: 'Send buffer of each DNS UDP listener (SO_SNDBUF, as Unbound\'s so-sndbuf); 0: the OS default. Forced past net.core.wmem_max where the daemon may (as so-rcvbuf), else capped at it.' },

  { key: 'client-deadline-ms', kind: 'int', min: 100, max: 60000, default: 4500, group: 'limits', description: 'Budget of one client query; SERVFAIL after it.' },
  { key: 'max-cname-chain', kind: 'int', min: 1, max: 64, default: 11, group: 'limits', description: 'CNAME/DNAME links followed for one query.' },
  { key: 'max-referrals', kind: 'int', min: 1, max: 256, default: 30, group: 'limits', description: 'Referrals followed for one name.' },
  { key: 'max-upstream-queries', kind: 'int', min: 1, max: 1024, default: 48, group: 'limits', description: 'Upstream queries for each link of a client query\'s CNAME chain, sub-queries included (Unbound\'s max-sent-count also resets on restarts).' },
  { key: 'max-subquery-depth', kind: 'int', min: 0, max: 16, default: 4, group: 'limits', description: 'Nesting of NS-name sub-resolutions.' },
  { key: 'max-subqueries', kind: 'int', min: 0, max: 256, default: 16, group: 'limits', description: 'NS-name sub-resolutions for one client query.' },
  { key: 'max-concurrent-queries', kind: 'int', min: 1, max: 1000000, default: 1000, group: 'limits', description: 'Resolutions in progress at once; beyond it SERVFAIL at once.' },
  { key: 'max-tcp-connections', kind: 'int', min: 1, max: 100000, default: 100, group: 'limits', description: 'Open DNS TCP connections.' },
  { key: 'tcp-idle-timeout-ms', kind: 'int', min: 100, max: 600000, default: 10000, group: 'limits', description: 'Idle DNS TCP connections are closed after this.' },

  { key: 'policy-listen', kind: 'endpoint', list: true, nonEmptyList: true, default: ['127.0.0.1:10023'], group: 'policy', description: 'Address:port of the Postfix policy service (check_policy_service inet:...). Repeatable.' },
  { key: 'policy-budget-ms', kind: 'int', min: 100, max: 60000, default: 3000, group: 'policy', description: 'Time budget of one policy decision (keep well below smtpd_policy_service_timeout); DUNNO after it.' },
  { key: 'policy-max-connections', kind: 'int', min: 1, max: 100000, default: 1000, group: 'policy', description: 'Open policy connections. Every smtpd process keeps one open (smtpd_policy_service_max_idle), and each master.cf service may run default_process_limit (100) of them: smtp, submission and smtps make 300. At the cap the connection idle the longest is closed to make room (Postfix reconnects); with every connection busy, Postfix gets no answer and applies smtpd_policy_service_default_action.' },
  { key: 'helo-must-resolve', kind: 'bool', default: false, group: 'policy', description: 'Step 2: reject HELO names that do not exist in DNS (NXDOMAIN).' },
  { key: 'helo-require-fqdn', kind: 'bool', default: true, group: 'policy', description: 'Step 2: reject a HELO name of one label ("localhost", "EXCH01"), as Postfix reject_non_fqdn_helo_hostname; no: only malformed names are rejected, as reject_invalid_helo_hostname.' },
  { key: 'recipients-file', kind: 'path', list: true, default: [], group: 'policy', description: 'Step 4: Postfix table source files of valid recipients (user@domain, @domain); recipients in domains no file lists are not judged; none: step skipped. Repeatable.' },
  { key: 'recipient-delimiter', kind: 'string', emptyAllowed: true, default: '+', group: 'policy', description: 'Step 4: address extension delimiter characters, as Postfix recipient_delimiter (split as Postfix does: owner-foo and foo-request stay whole when "-" is one); "" when addresses have no extensions.' },
  { key: 'known-network', kind: 'cidr', refuseHostBits: true, list: true, default: ['127.0.0.1/32', '::1/128'], group: 'policy', description: 'Step 5: clients passed at once (backup MXs, trusted hosts). Repeatable; the first given replaces the default (localhost).' },
  { key: 'known-networks-file', kind: 'path', list: true, default: [], group: 'policy', description: 'Step 5: Postfix cidr: table files or plain CIDR lists. Repeatable.' },

  { key: 'dnswl-trusted', kind: 'list-spec', list: true, default: [], group: 'lists', description: 'Step 7: trusted DNSWL, postscreen dnsbl_sites syntax (list.dnswl.org=127.0.[0..255].[2;3]); listed: pass, skip the rest. Repeatable.' },
  { key: 'dnsbl', kind: 'list-spec', list: true, default: [], group: 'lists', description: 'Step 8: DNSBL with optional reply filter and weight (zen.spamhaus.org=127.0.0.[2..11]*3). Repeatable.' },
  { key: 'dnsbl-reply-name', kind: 'string', list: true, default: [], group: 'lists', problemOf: replyNameProblem, description: 'Step 8: the name a reject shows for a DNSBL zone, ZONE=SHOWN (as postscreen_dnsbl_reply_map), e.g. KEY.zen.dq.spamhaus.net=zen.spamhaus.org, so a zone holding an access key is never sent to clients. Repeatable.' },
  { key: 'dnsbl-threshold', kind: 'int', min: 1, max: 1000, default: 1, group: 'lists', description: 'Step 8: total weight of listings that rejects.' },
  { key: 'dnswl', kind: 'list-spec', list: true, default: [], group: 'lists', description: 'Step 9: DNSWL of verified SMTP servers; listed: pass without greylisting. Repeatable.' },
  { key: 'dns-list-budget-ms', kind: 'int', min: 50, max: 30000, default: 1500, group: 'lists', description: 'Time for all DNSBL/DNSWL lookups of one decision (in parallel); a list not answering in time counts as not listed.' },
  { key: 'dns-list-selftest-interval', kind: 'duration', unit: 's', min: 0, max: 604800, default: 3600, group: 'lists', description: 'RFC 5782 test points (127.0.0.2 listed, 127.0.0.1 not) checked at start and this often (0: never); a list that lists 127.0.0.1 is ignored until it passes; after a start a list is asked for clients once its first test has ended.' },

  { key: 'greylist', kind: 'bool', default: true, group: 'greylist', description: 'Step 10: greylisting on or off.' },
  { key: 'delay', kind: 'duration', unit: 's', min: 0, max: 86400, default: 60, group: 'greylist', description: 'Seconds a new triplet is deferred (postgrey --delay).' },
  { key: 'retry-window', kind: 'duration', unit: 'd', min: 60, max: 30 * 86400, default: 2 * 86400, group: 'greylist', description: 'How long a deferred sender may take to retry; days, or with h/m/s suffix (postgrey --retry-window).' },
  { key: 'max-age', kind: 'duration', unit: 'd', min: 86400, max: 3650 * 86400, default: 35 * 86400, group: 'greylist', description: 'Entries unseen this long are deleted; days (postgrey --max-age).' },
  { key: 'auto-whitelist-clients', kind: 'int', min: 0, max: 1000000, default: 5, group: 'greylist', description: 'Clients passing greylisting this many times skip it; a pass counts at most once an hour per client (0: off; postgrey --auto-whitelist-clients).' },
  { key: 'lookup-by-host', kind: 'bool', default: false, group: 'greylist', description: 'Key triplets by the full client address instead of its /24 (/64) (postgrey --lookup-by-host).' },
  { key: 'ipv4cidr', kind: 'int', min: 0, max: 32, default: 24, group: 'greylist', description: 'Prefix length of the IPv4 client network in a triplet (postgrey --ipv4cidr). A change starts greylisting over for every sender; use the same value on every node.' },
  { key: 'ipv6cidr', kind: 'int', min: 0, max: 128, default: 64, group: 'greylist', description: 'Prefix length of the IPv6 client network in a triplet (postgrey --ipv6cidr). A change starts greylisting over for every sender; use the same value on every node.' },
  {
    key: 'greylist-action', kind: 'string', default: 'DEFER_IF_PERMIT', group: 'greylist',
    // access(5) actions are case-insensitive; 421 would also drop the connection (Postfix smtpd).
    pattern: /^(DEFER_IF_PERMIT|DEFER_IF_REJECT|DEFER|4(?!21)[0-9][0-9])$/i,
    patternHint: 'DEFER_IF_PERMIT, DEFER_IF_REJECT, DEFER or a 4NN reply code other than 421 (greylisting defers mail: it never rejects it, nor drops the connection)',
    description: 'Postfix access(5) action for a greylisted mail (postgrey --greylist-action): DEFER_IF_PERMIT lets later restrictions reject first; 451 defers at once.',
  },
  {
    key: 'greylist-text', kind: 'string', default: 'Greylisted by mxsentry, try again in %s seconds', group: 'greylist',
    problemOf: greylistTextProblem,
    description: 'Text of the greylisting reply (postgrey --greylist-text): %s becomes the seconds left, %r the recipient\'s domain; "4.2.0 " goes first unless the text starts with a digit (its own status code).',
  },
  { key: 'whitelist-clients', kind: 'path', list: true, default: [], group: 'greylist', description: 'postgrey whitelist_clients files (hostnames, domains, /regex/, addresses, CIDR). Repeatable.' },
  { key: 'whitelist-recipients', kind: 'path', list: true, default: [], group: 'greylist', description: 'postgrey whitelist_recipients files (user@domain, @domain, postmaster@, /regex/). Repeatable.' },
  { key: 'x-greylist-header', kind: 'bool', default: true, group: 'greylist', description: 'Add "X-Greylist: delayed N seconds by mxsentry-VERSION at HOSTNAME; DATE" to the first accepted retry of a triplet (off: --no-x-greylist-header).' },
  { key: 'store-map-size', kind: 'size', min: 1 << 20, max: 1024 ** 4, default: 1024 ** 3, group: 'greylist', description: 'Largest size of the LMDB greylist store.' },

  { key: 'node-name', kind: 'string', emptyAllowed: true, default: '', group: 'replication', description: 'This node\'s name in the cluster: its identity towards peers and the NAME in their peer lines (empty: the host name).' },
  { key: 'replication-listen', kind: 'endpoint', default: '', group: 'replication', description: 'Address:port where peers connect to push their greylist changes (TLS-PSK); empty: no listener.' },
  { key: 'peer', kind: 'string', list: true, default: [], group: 'replication', description: 'A peer MX node as NAME=HOST:PORT (its node-name and replication-listen); list every other node on every node. Repeatable.' },
  { key: 'replication-key', kind: 'string', emptyAllowed: true, default: '', group: 'replication', description: 'Cluster key shared by all nodes (64 hex digits from "mxsentry peer keygen"); peers holding another key are refused. As a command-line flag it shows in the process list: prefer replication-key-file.' },
  { key: 'replication-key-file', kind: 'path', default: '', group: 'replication', description: 'File holding the cluster key instead of replication-key (mode 0600).' },
  { key: 'replication-digest-interval', kind: 'duration', unit: 's', min: 1, max: 86400, default: 3600, group: 'replication', description: 'How often each link compares per-bucket digests and repairs what the log no longer holds (also once after each connect); seconds, or with m/h suffix. A round reads every record: about 20 us each.' },
  { key: 'replication-timeout', kind: 'duration', unit: 's', min: 1, max: 600, default: 15, group: 'replication', description: 'A peer link silent this long is closed and redialled (pings at a third of it); seconds.' },
  { key: 'replication-log-max', kind: 'int', min: 1000, max: 1_000_000_000, default: 1_000_000, group: 'replication', description: 'Log entries kept for a peer that is down; beyond it the oldest are dropped and the digest repair fills the peer.' },
];

const BY_KEY = new Map(SCHEMA.map((d) => [d.key, d]));

/**
 * Keys naming table files of the policy service (recipients, CIDR tables, postgrey whitelists):
 * read again on every reload, each checked by `config check`.
 */
export const TABLE_FILE_KEYS = ['recipients-file', 'known-networks-file', 'whitelist-clients', 'whitelist-recipients'] as const;

export type TableFileKey = (typeof TABLE_FILE_KEYS)[number];

/** The definition of a key, or undefined. */
export function keyDef(key: string): KeyDef | undefined {
  return BY_KEY.get(key);
}

/** Closest known key to a misspelt one (Levenshtein <= 3), for "did you mean". */
export function suggestKey(key: string): string | undefined {
  let best: string | undefined;
  let bestDist = 4;
  for (const d of SCHEMA) {
    const dist = levenshtein(key, d.key);
    if (dist < bestDist) {
      best = d.key;
      bestDist = dist;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Why a dnsbl-reply-name value is not ZONE=SHOWN with two domain names, or undefined. */
function replyNameProblem(text: string): string | undefined {
  const eq = text.indexOf('=');
  if (eq < 0) return 'is not ZONE=SHOWN (e.g. KEY.zen.dq.spamhaus.net=zen.spamhaus.org)';
  const domain = /^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/i;
  for (const side of [text.slice(0, eq).trim(), text.slice(eq + 1).trim()]) {
    if (!domain.test(side)) return `is not ZONE=SHOWN: "${side}" is not a domain name`;
  }
  return undefined;
}

/**
 * greylist-text goes into an SMTP reply after Postfix's own reply code: printable ASCII on one line,
 * at most 400 characters, and a leading status code must be a temporary one (4.X.X). A reply code
 * ("450 ...") or a permanent status ("5.7.1 ...") would contradict the deferral Postfix sends.
 */
function greylistTextProblem(text: string): string | undefined {
  const bad = /[^\x20-\x7e]/.exec(text);
  if (bad) return `holds ${JSON.stringify(bad[0])} at character ${bad.index + 1}: it must be printable ASCII on one line (it is sent in an SMTP reply)`;
  if (text.length > 400) return `is ${text.length} characters long; at most 400 fit an SMTP reply`;
  if (/^[0-9]/.test(text) && !/^4\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)/.test(text)) {
    const first = text.split(' ', 1)[0];
    const rest = text.slice(4);
    return /^[0-9]{3}$/.test(first ?? '')
      ? `starts with the reply code ${first}: Postfix sends the reply code itself (greylist-action); the text may start with a 4.X.X status code, e.g. "${/^4\.[0-9]{1,3}\.[0-9]{1,3} /.test(rest) ? rest : `4.7.1 ${rest}`}"`
      : `starts with "${first}": a text that starts with a digit must start with a temporary status code (4.X.X), as greylisting defers mail`;
  }
  return undefined;
}
