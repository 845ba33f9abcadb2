// End-to-end (issue 3): a real Debian Postfix on a loopback port consulting the built daemon
// (`node bin/mxsentry serve`) through check_policy_service, driven by swaks from distinct 127.x client
// addresses: greylisting (450, early 450, 250 after the delay), DNSBL 554, DNSWL 250 at once, unknown
// recipient 550, no HELO, the null sender, and mail still flowing once mxsentry is stopped. Needs a build
// first. Postfix, the daemon and the fake DNS tree are stopped and their temp dirs removed even on failure.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import {
  DAEMON_ADDRESS,
  freeLoopbackPort,
  removeTempDir,
  spawnDaemon,
  startSharedPortTree,
  writeTempFile,
  type RunningDaemon,
  type SharedPortTree,
} from '../helpers/daemon.js';
import { standardTree, type HierarchySpec } from '../helpers/fake-hierarchy.js';
import { findPeer, requirePeer, requireRoot } from '../helpers/peers.js';
import { runSwaks, smtpDialogue, startPostfix, type PostfixInstance, type SmtpReply, type SwaksResult } from '../helpers/postfix.js';
import { loggedHook } from '../helpers/hook-errors.js';

/** Greylist delay of the daemon under test, seconds: long enough for an early retry, short for CI. */
const DELAY_SEC = 4;
const DOMAIN = 'example.com';
const KNOWN_RECIPIENT = `user@${DOMAIN}`;
const HELO = 'mail.sender.example';

// SMTP clients, all on 127.0.0.0/24 (one greylist /24: the triplets differ by sender and recipient).
const DNSBL_CLIENT = '127.0.0.2'; // RFC 5782 test point, listed in dnsbl.example.net
const DNSWL_CLIENT = '127.0.0.5'; // listed only in dnswl.example.net
const GREY_CLIENT = '127.0.0.10';
const NULL_SENDER_CLIENT = '127.0.0.11';
const UNKNOWN_RCPT_CLIENT = '127.0.0.12';
const NO_HELO_CLIENT = '127.0.0.13';
const FAIL_OPEN_CLIENT = '127.0.0.14';
const SENDER_CLIENT = '127.0.0.16';

/**
 * standardTree() plus dnswl.example.net (ns.dnswl.example.net 127.53.4.3, rbldnsd-like), listing
 * 127.0.0.5 and the RFC 5782 test point 127.0.0.2 with dnswl.org-style 127.0.10.2 answers.
 */
function treeWithDnswl(): HierarchySpec {
  const spec = standardTree();
  const netZone = spec.zones['example.net.'];
  assert.ok(netZone, 'standardTree has example.net.');
  netZone.records.push('dnswl 3600 IN NS ns.dnswl.example.net.', 'ns.dnswl 3600 IN A 127.53.4.3');
  spec.zones['dnswl.example.net.'] = {
    records: [
      '@ 3600 IN SOA ns.dnswl.example.net. hostmaster.example.net. 2024010101 600 300 86400 60',
      '@ 3600 IN NS ns.dnswl.example.net.',
      'ns 3600 IN A 127.53.4.3',
      '2.0.0.127 300 IN A 127.0.10.2',
      '5.0.0.127 300 IN A 127.0.10.2',
    ],
  };
  spec.servers.push({ address: '127.53.4.3', zones: ['dnswl.example.net.'], behaviour: 'nxdomain-ent' });
  return spec;
}

/** Polls until something accepts TCP on DAEMON_ADDRESS:port; bounded. */
async function waitForTcp(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((done) => {
      const sock = net.connect({ host: DAEMON_ADDRESS, port });
      sock.once('connect', () => {
        sock.destroy();
        done(true);
      });
      sock.once('error', () => {
        sock.destroy();
        done(false);
      });
    });
    if (ok) return;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`nothing listens on ${DAEMON_ADDRESS}:${port} after ${timeoutMs} ms (is the policy service wired into serve?)`);
}

/** The daemon's "policy decision" log lines for one client address, oldest first. */
function decisionsFor(d: RunningDaemon, client: string): Array<Record<string, unknown>> {
  return d.logLines().filter((l) => l.msg === 'policy decision' && l.client === client);
}

/** Polls (bounded) until the daemon logged n decisions for a client; its stdout may lag the SMTP reply. */
async function waitForDecisions(d: RunningDaemon, client: string, n: number): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 3000;
  while (decisionsFor(d, client).length < n && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
  return decisionsFor(d, client);
}

function show(r: SwaksResult): string {
  return `swaks exit ${r.exitCode}:\n${r.transcript}`;
}

function assertQueued(r: SwaksResult, what: string): void {
  assert.is(r.rcpt?.code, 250, `${what}: RCPT TO accepted\n${show(r)}`);
  assert.is(r.dataEnd?.code, 250, `${what}: message queued\n${show(r)}`);
  assert.match(r.dataEnd?.text ?? '', /queued as [0-9A-F]+/, `${what}: queued\n${show(r)}`);
}

const s = suite('e2e/postfix-policy');
let tree: SharedPortTree | null = null;
let daemon: RunningDaemon | null = null;
let postfix: PostfixInstance | null = null;
let swaksPath = '';
let policyPort = 0;
let recipientsDir: string | null = null;
/** Date.now() when the last first-attempt of a greylisted triplet ended (the daemon runs on real time). */
let lastFirstAttemptAtMs = 0;

/** The shared setup, or null (a printed skip) when Postfix or swaks is missing outside CI. */
function ready(testName: string): { daemon: RunningDaemon; postfix: PostfixInstance } | null {
  const pf = requirePeer('postfix', testName);
  const sw = requirePeer('swaks', testName);
  if (!pf || !sw || !requireRoot(testName)) return null;
  assert.ok(daemon && postfix, 'the daemon or Postfix did not start (see the before hook error)');
  return { daemon, postfix };
}

function send(port: number, client: string, from: string, to: string): Promise<SwaksResult> {
  return runSwaks(swaksPath, { port, localAddress: client, helo: HELO, from, to });
}

s.before(loggedHook(async () => {
  const postfixPath = findPeer('postfix');
  const swaks = findPeer('swaks');
  // Each test reports the skip (or, under CI, the failure) itself.
  if (!postfixPath || !swaks || process.getuid?.() !== 0) return;
  swaksPath = swaks;
  tree = await startSharedPortTree(treeWithDnswl());
  const recipients = writeTempFile('recipients', `# valid recipients (Postfix table source format)\n${KNOWN_RECIPIENT} OK\npostmaster@${DOMAIN} OK\n`);
  recipientsDir = recipients.dir;
  policyPort = await freeLoopbackPort();
  daemon = await spawnDaemon({
    upstreamPort: tree.port,
    rootHints: tree.rootHints,
    args: [
      '--policy-listen', `${DAEMON_ADDRESS}:${policyPort}`,
      '--delay', String(DELAY_SEC),
      '--dnsbl', 'dnsbl.example.net=127.0.0.[2..11]',
      '--dnswl', 'dnswl.example.net=127.0.[0..255].[1..3]',
      '--recipients-file', recipients.file,
      '--known-network', '127.0.0.1/32',
    ],
  });
  await waitForTcp(policyPort, 10_000);
  postfix = await startPostfix(postfixPath, { policyPort, domains: [DOMAIN] });
}));

s.after(async () => {
  try {
    await postfix?.dispose();
  } finally {
    try {
      await daemon?.dispose();
    } finally {
      try {
        await tree?.stop();
      } finally {
        if (recipientsDir) removeTempDir(recipientsDir);
      }
    }
  }
});

s('greylisting: a new triplet gets 450 with a retry hint, and so does an early retry', async () => {
  const env = ready('greylist first attempt');
  if (!env) return;
  const startedAtMs = Date.now();
  const first = await send(env.postfix.port, GREY_CLIENT, 'alice@sender.example', KNOWN_RECIPIENT);
  lastFirstAttemptAtMs = Date.now();
  assert.is(first.rcpt?.code, 450, show(first));
  assert.match(first.rcpt?.text ?? '', /^4\.\d\.\d <user@example\.com>: Recipient address rejected: Greylisted/, show(first));
  const hint = /try again in (\d+) seconds/.exec(first.rcpt?.text ?? '');
  assert.ok(hint, `retry hint in the reply\n${show(first)}`);
  assert.ok(Number(hint[1]) >= 1 && Number(hint[1]) <= DELAY_SEC, `hint ${hint[1]} s within the ${DELAY_SEC} s delay`);
  assert.is(first.dataEnd, undefined, 'no DATA after a refused recipient');

  const early = await send(env.postfix.port, GREY_CLIENT, 'alice@sender.example', KNOWN_RECIPIENT);
  const elapsedMs = Date.now() - startedAtMs;
  assert.ok(elapsedMs < DELAY_SEC * 1000, `the early retry came ${elapsedMs} ms after the first attempt: not early on this machine`);
  assert.is(early.rcpt?.code, 450, show(early));
  assert.match(early.rcpt?.text ?? '', /Greylisted/, show(early));
});

s('the null sender is not rejected as a malformed sender: greylisted like any other triplet', async () => {
  const env = ready('null sender first attempt');
  if (!env) return;
  const r = await send(env.postfix.port, NULL_SENDER_CLIENT, '<>', KNOWN_RECIPIENT);
  lastFirstAttemptAtMs = Date.now();
  const mail = r.replies.find((x) => x.command === 'MAIL FROM:<>');
  assert.is(mail?.code, 250, `MAIL FROM:<> accepted\n${show(r)}`);
  assert.is(r.rcpt?.code, 450, show(r));
  assert.match(r.rcpt?.text ?? '', /Greylisted/, show(r));
});

s('a client listed in the DNSBL gets 554 naming the list', async () => {
  const env = ready('DNSBL 554');
  if (!env) return;
  const r = await send(env.postfix.port, DNSBL_CLIENT, 'mallory@sender.example', KNOWN_RECIPIENT);
  assert.is(r.rcpt?.code, 554, show(r));
  assert.match(r.rcpt?.text ?? '', /^5\.7\.1 <user@example\.com>: Recipient address rejected: .*Client host \[127\.0\.0\.2\] blocked using dnsbl\.example\.net/, show(r));
  assert.is(r.dataEnd, undefined);
});

s('a client listed in the DNSWL is accepted at once (no greylisting) and delivered', async () => {
  const env = ready('DNSWL 250');
  if (!env) return;
  const r = await send(env.postfix.port, DNSWL_CLIENT, 'carol@sender.example', KNOWN_RECIPIENT);
  assertQueued(r, 'DNSWL-listed client, first attempt');
  const queueId = /queued as ([0-9A-F]+)/.exec(r.dataEnd?.text ?? '')?.[1] ?? '';
  const delivered = await env.postfix.waitForLog(new RegExp(`${queueId}: to=<user@example\\.com>.*status=sent`));
  assert.ok(delivered, `Postfix delivered ${queueId} (to discard)\n${env.postfix.maillog()}`);
  // The 250 came from the policy service's DNSWL step, not from Postfix failing open.
  assert.not.match(env.postfix.maillog(), /problem talking to server/);
  const decisions = await waitForDecisions(env.daemon, DNSWL_CLIENT, 1);
  assert.equal(decisions.map((d) => [d.stepName, d.action]), [['dnswl', 'DUNNO']], JSON.stringify(decisions));
});

s('an unknown recipient gets 550 5.1.1 before any greylisting', async () => {
  const env = ready('unknown recipient 550');
  if (!env) return;
  const r = await send(env.postfix.port, UNKNOWN_RCPT_CLIENT, 'dave@sender.example', `nobody@${DOMAIN}`);
  assert.is(r.rcpt?.code, 550, show(r));
  assert.match(r.rcpt?.text ?? '', /^5\.1\.1 <nobody@example\.com>: Recipient address rejected: User unknown/, show(r));
});

s('a sender that is not fully qualified gets Postfix\'s own 504 5.5.2; one Postfix accepts (underscore, trailing dot) goes on to greylisting', async () => {
  const env = ready('sender 504');
  if (!env) return;
  const bad = await send(env.postfix.port, SENDER_CLIENT, 'root@localhost', KNOWN_RECIPIENT);
  assert.is(bad.rcpt?.code, 504, show(bad));
  assert.match(bad.rcpt?.text ?? '', /^5\.5\.2 <user@example\.com>: Recipient address rejected: <root@localhost>: Sender address rejected: need fully-qualified address$/, show(bad));
  for (const sender of ['bounce@mail_out.sender.example', 'frank@sender.example.']) {
    const ok = await send(env.postfix.port, SENDER_CLIENT, sender, KNOWN_RECIPIENT);
    assert.is(ok.rcpt?.code, 450, show(ok));
  }
});

s('a client that never said HELO/EHLO is rejected at RCPT', async () => {
  const env = ready('no HELO');
  if (!env) return;
  const replies: SmtpReply[] = await smtpDialogue({
    port: env.postfix.port,
    localAddress: NO_HELO_CLIENT,
    commands: ['MAIL FROM:<erin@sender.example>', `RCPT TO:<${KNOWN_RECIPIENT}>`],
  });
  const text = JSON.stringify(replies);
  assert.is(replies[0]?.code, 220, text);
  assert.is(replies[1]?.code, 250, `Postfix itself does not require HELO here: ${text}`);
  assert.is(replies[2]?.command, `RCPT TO:<${KNOWN_RECIPIENT}>`);
  // Postfix's own reply to a missing HELO (503 5.5.1), not access_map_reject_code's 554.
  assert.is(replies[2]?.code, 503, text);
  assert.match(replies[2]?.text ?? '', /^5\.5\.1 <user@example\.com>: Recipient address rejected: Error: send HELO\/EHLO first$/, text);
});

s('a retry after the delay is accepted and delivered, the null sender included', async () => {
  const env = ready('greylist retry after the delay');
  if (!env) return;
  assert.ok(lastFirstAttemptAtMs > 0, 'the first attempts ran');
  // A real wait (the daemon runs on real time), bounded by DELAY_SEC plus a margin.
  const waitMs = lastFirstAttemptAtMs + DELAY_SEC * 1000 + 500 - Date.now();
  if (waitMs > 0) await new Promise((done) => setTimeout(done, waitMs));
  const retry = await send(env.postfix.port, GREY_CLIENT, 'alice@sender.example', KNOWN_RECIPIENT);
  assertQueued(retry, 'retry after the delay');
  const nullRetry = await send(env.postfix.port, NULL_SENDER_CLIENT, '<>', KNOWN_RECIPIENT);
  assertQueued(nullRetry, 'null sender retry after the delay');
  const queueId = /queued as ([0-9A-F]+)/.exec(nullRetry.dataEnd?.text ?? '')?.[1] ?? '';
  assert.ok(await env.postfix.waitForLog(new RegExp(`${queueId}: from=<>`)), `the null-sender message ${queueId} went through the queue\n${env.postfix.maillog()}`);
  // The passing retry is the greylist step's once-per-message X-Greylist header (DESIGN.md s3 step 10).
  for (const client of [GREY_CLIENT, NULL_SENDER_CLIENT]) {
    const last = (await waitForDecisions(env.daemon, client, 2)).at(-1);
    assert.is(last?.stepName, 'greylist', JSON.stringify(last));
    assert.match(String(last?.action), /^PREPEND X-Greylist: delayed \d+ seconds by mxsentry/, JSON.stringify(last));
  }
});

s('mxsentry stopped: Postfix falls back to smtpd_policy_service_default_action = DUNNO and mail flows', async () => {
  const env = ready('mxsentry stopped');
  if (!env) return;
  assert.equal(await env.daemon.stop(), { code: 0, signal: null });
  assert.equal(env.daemon.nonJsonLines(), [], 'stdout is JSON lines only');
  const bad = env.daemon.logLines().filter((l) => l.level === 'error' || l.level === 'fatal');
  assert.equal(bad, [], 'no error lines in the daemon log');

  const r = await send(env.postfix.port, FAIL_OPEN_CLIENT, 'frank@sender.example', KNOWN_RECIPIENT);
  assertQueued(r, 'policy service down');
  const warning = await env.postfix.waitForLog(new RegExp(`127\\.0\\.0\\.1:${policyPort}.*Connection refused`));
  assert.ok(warning, `Postfix logged the dead policy service\n${env.postfix.maillog()}`);
});

s.run();
