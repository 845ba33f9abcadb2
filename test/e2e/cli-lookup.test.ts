// `mxsentry lookup` as a user runs it: the built CLI resolving through the same resolver code
// against the fake tree, printing the answer and where it came from, with scriptable exit codes;
// and the CLI's usage errors and its output to a reader that stops early.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MXSENTRY_BIN, removeTempDir, startSharedPortTree, writeTempFile, type SharedPortTree } from '../helpers/daemon.js';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { loggedHook } from '../helpers/hook-errors.js';

const run = promisify(execFile);
const s = suite('e2e: mxsentry lookup');
let tree: SharedPortTree;
let hints: { dir: string; file: string };

s.before(loggedHook(async () => {
  tree = await startSharedPortTree(standardTree());
  hints = writeTempFile('root.hints', tree.rootHints);
}));
s.after(async () => {
  await tree.stop();
  removeTempDir(hints.dir);
});

async function lookup(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const all = [MXSENTRY_BIN, 'lookup', ...args, '--root-hints', hints.file, '--query-loopback', '--upstream-port', String(tree.port), '--data-dir', `${hints.dir}/data`];
  try {
    const r = await run(process.execPath, all, { timeout: 15_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

s('an A record: answer, source and exit 0', async () => {
  const r = await lookup('www.example.com', 'A');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /NOERROR, from recursion/);
  assert.match(r.stdout, /www\.example\.com\.\s+300\s+IN\s+A\s+192\.0\.2\.1/);
});

s('--log-level sets what the lookup logs on stderr (default: warnings only)', async () => {
  const quiet = await lookup('www.example.com', 'A');
  assert.not.match(quiet.stderr, /root priming done/);
  const told = await lookup('www.example.com', 'A', '--log-level', 'info');
  assert.is(told.code, 0, told.stderr);
  assert.match(told.stderr, /root priming done/);
});

s('a failed lookup says what the servers did: nothing listens at the root hints -> "no server answered"', async () => {
  const dead = writeTempFile('root.hints', '.  3600000 IN NS a.dead-root.\na.dead-root.  3600000 IN A 127.53.250.250\n');
  try {
    const all = [MXSENTRY_BIN, 'lookup', 'www.example.com', 'A', '--root-hints', dead.file, '--query-loopback', '--upstream-port', String(tree.port), '--data-dir', `${dead.dir}/data`, '--client-deadline-ms', '1500'];
    const r = await run(process.execPath, all, { timeout: 15_000 }).then(() => null, (e: { code: number; stdout: string; stderr: string }) => e);
    assert.is(r?.code, 3, r?.stderr);
    assert.match(r?.stdout ?? '', /SERVFAIL, from recursion, \d+ ms, failure: /);
    assert.match(r?.stdout ?? '', /^;; upstream: (\d+) quer(?:y|ies) sent, \1 unanswered, 0 lame answers: no server answered; can this host reach port 53/m);
    // --log-level debug names each query that got no answer, as the troubleshooting section says.
    const debug = await run(process.execPath, [...all, '--log-level', 'debug'], { timeout: 15_000 }).then(() => null, (e: { stderr: string }) => e);
    const unanswered = (debug?.stderr ?? '').split('\n').filter((l) => l.includes('"msg":"upstream query got no answer"'));
    assert.ok(unanswered.length > 0 && unanswered.every((l) => l.includes('"server":"127.53.250.250"')), debug?.stderr);
  } finally {
    removeTempDir(dead.dir);
  }
});

s('a zone whose servers refuse: the failure names each server and its answer (REFUSED), in text and in JSON', async () => {
  const spec = standardTree();
  spec.servers.find((x) => x.address === '127.53.4.1')!.behaviour = 'refused';
  const refusing = await startSharedPortTree(spec);
  const refusingHints = writeTempFile('root.hints', refusing.rootHints);
  try {
    const call = (...extra: string[]) => run(process.execPath, [MXSENTRY_BIN, 'lookup', '2.0.0.127.dnsbl.example.net', 'A', ...extra, '--root-hints', refusingHints.file, '--query-loopback', '--upstream-port', String(refusing.port), '--data-dir', `${refusingHints.dir}/data`], { timeout: 15_000 })
      .then((x) => ({ code: 0, ...x }), (e: { code: number; stdout: string; stderr: string }) => e);
    const text = await call();
    assert.is(text.code, 3, text.stderr);
    assert.match(text.stdout, /SERVFAIL, from recursion, \d+ ms, failure: no-servers \(127\.53\.4\.1 REFUSED\)$/m);
    const json = JSON.parse((await call('--json')).stdout) as { failure: string; failureDetail: string };
    assert.equal([json.failure, json.failureDetail], ['no-servers', '127.53.4.1 REFUSED']);
  } finally {
    await refusing.stop();
    removeTempDir(refusingHints.dir);
  }
});

s('MX through a CNAME-free zone, JSON output', async () => {
  const r = await lookup('example.com', 'MX', '--json');
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { rcode: string; records: Array<{ data: unknown }> };
  assert.is(j.rcode, 'NOERROR');
  assert.equal(j.records[0]?.data, { preference: 10, exchange: 'mail.example.com.' });
});

s('a CNAME chain that ends in NODATA: the chain and the SOA, in text and in JSON', async () => {
  const text = await lookup('alias.example.com', 'MX');
  assert.is(text.code, 1, text.stderr);
  assert.match(text.stdout, /alias\.example\.com\.\s+\d+\s+IN\s+CNAME\s+alias2\.example\.com\.\n/);
  assert.match(text.stdout, /alias2\.example\.com\.\s+\d+\s+IN\s+CNAME\s+www\.example\.com\.\n/);
  assert.match(text.stdout, /authority: example\.com\.\s+\d+\s+IN\s+SOA/);
  const json = await lookup('alias.example.com', 'MX', '--json');
  const j = JSON.parse(json.stdout) as { rcode: string; records: unknown[]; answers: Array<{ name: string; type: string; data: string }>; authorities: Array<{ type: string }> };
  assert.is(j.rcode, 'NOERROR');
  assert.equal(j.records, []);
  assert.equal(j.answers.map((a) => [a.name, a.type, a.data]), [['alias.example.com.', 'CNAME', 'alias2.example.com.'], ['alias2.example.com.', 'CNAME', 'www.example.com.']]);
  assert.equal(j.authorities.map((a) => a.type), ['SOA']);
});

s('types no resolver looks up (zone transfers, meta-types) are a usage error, as the DNS server refuses them; an IDN is asked in its xn-- form', async () => {
  for (const [type, rcode] of [['AXFR', 'REFUSED'], ['IXFR', 'REFUSED'], ['OPT', 'FORMERR'], ['TSIG', 'FORMERR'], ['MAILA', 'NOTIMP'], ['TYPE128', 'FORMERR']]) {
    const r = await lookup('www.example.com', type!);
    assert.is(r.code, 2, `${type}: ${r.stdout}`);
    assert.is(r.stderr.split('\n')[0], `mxsentry: ${type} is not a type a resolver looks up (the DNS server answers it ${rcode})`);
  }
  const idn = await lookup('bücher.example.com');
  assert.is(idn.code, 1, idn.stderr);
  assert.match(idn.stdout, /^;; xn--bcher-kva\.example\.com A: NXDOMAIN/);
});

s('NXDOMAIN exits 1 and shows the SOA', async () => {
  const r = await lookup('nope.example.com');
  assert.is(r.code, 1);
  assert.match(r.stdout, /NXDOMAIN/);
  assert.match(r.stdout, /authority: example\.com\.\s+\d+\s+IN\s+SOA/);
});

s('a bad config value exits 2 naming the key', async () => {
  const r = await lookup('www.example.com', '--cache-size', 'lots');
  assert.is(r.code, 2);
  assert.match(r.stderr, /cache-size/);
});

s('a root hints file that cannot be read is a configuration problem: exit 2, as for serve', async () => {
  const r = await run(process.execPath, [MXSENTRY_BIN, 'lookup', 'localhost', '--root-hints', '/nonexistent/named.root', '--data-dir', `${hints.dir}/data`], { timeout: 15_000 }).then(
    (x) => ({ code: 0, ...x }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /config error: .*\/nonexistent\/named\.root/);
  // A local zones file with two bad lines: two problems, each on a config error line of its own.
  const zones = writeTempFile('local.conf', 'local-zone: "a.example." staticc\nlocal-data: "b.example. IN A x"\n');
  try {
    const z = await run(process.execPath, [MXSENTRY_BIN, 'lookup', 'localhost', '--local-zones-file', zones.file, '--data-dir', `${hints.dir}/data`], { timeout: 15_000 }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.is(z.code, 2, z.stderr);
    assert.equal(z.stderr.split('\n').filter((l) => l.startsWith('mxsentry: config error: ')).length, 2, z.stderr);
    assert.match(z.stderr, /2 problem\(s\) in the configuration/);
  } finally {
    removeTempDir(zones.dir);
  }
});

s('a bad name or type is a usage error (exit 2), not a DNS failure; a local name is answered locally', async () => {
  const badName = await lookup('a..b.test');
  assert.is(badName.code, 2);
  assert.match(badName.stderr, /empty label/);
  const badType = await lookup('localhost', 'BOGUS');
  assert.is(badType.code, 2);
  assert.match(badType.stderr, /unknown RR type "BOGUS"/);
  const local = await lookup('localhost');
  assert.is(local.code, 0, local.stderr);
  assert.match(local.stdout, /NOERROR, from local, \d ms/, 'a local answer takes no time to speak of');
});

s('an address asks for its PTR record, as host and dig -x do (IPv4 and IPv6)', async () => {
  const v4 = await lookup('127.0.0.1');
  assert.is(v4.code, 0, v4.stderr);
  assert.match(v4.stdout, /^;; 1\.0\.0\.127\.in-addr\.arpa PTR: NOERROR, from local/m);
  assert.match(v4.stdout, /IN\s+PTR\s+localhost\./);
  const v6 = await lookup('::1');
  assert.match(v6.stdout, /^;; 1(\.0){31}\.ip6\.arpa PTR: NOERROR/m);
  // An explicit type is taken as asked.
  const asked = await lookup('127.0.0.1', 'TXT');
  assert.match(asked.stdout, /^;; 127\.0\.0\.1 TXT:/m);
  // A too, as dig does with a name that looks like an address.
  assert.match((await lookup('127.0.0.1', 'A')).stdout, /^;; 127\.0\.0\.1 A:/m);
  // -x, as dig -x.
  const x = await lookup('-x', '127.0.0.1');
  assert.is(x.code, 0, x.stderr);
  assert.match(x.stdout, /^;; 1\.0\.0\.127\.in-addr\.arpa PTR: NOERROR, from local/m);
  const notAddress = await lookup('-x', 'localhost');
  assert.is(notAddress.code, 2);
  assert.match(notAddress.stderr, /-x takes an IP address, got "localhost"/);
});

s('a usage error is one short message naming the command\'s --help (exit 2), not the whole help', async () => {
  // A switch given a word that is not its own: the switch and its words are named, not only "maybe".
  const bad = await lookup('localhost', 'A', '--prefetch', 'maybe');
  assert.is(bad.code, 2);
  assert.is(bad.stderr, 'mxsentry: --prefetch: "maybe" is not yes/no (a switch: --prefetch, --prefetch yes|no, --prefetch=yes|no, or --no-prefetch)\nRun `mxsentry lookup --help` for the options.\n');
  const check = await run(process.execPath, [MXSENTRY_BIN, 'check', '--greylist', 'maybe', '--client-address', '192.0.2.1', '--recipient', 'a@b.example']).then(() => null, (e: { code: number; stderr: string }) => e);
  assert.is(check?.code, 2);
  assert.match(check?.stderr ?? '', /^mxsentry: --greylist: "maybe" is not yes\/no \(a switch: --greylist, --greylist yes\|no, --greylist=yes\|no, or --no-greylist\)\nRun `mxsentry check --help`/);
  // An enum key names its choices (yargs' own message).
  const choice = await lookup('localhost', '--qname-minimisation', 'maybe');
  assert.is(choice.code, 2);
  assert.match(choice.stderr, /Argument: qname-minimisation, Given: "maybe", Choices: "off", "relaxed", "strict"/);
  const none = await run(process.execPath, [MXSENTRY_BIN, 'frobnicate']).then(() => null, (e: { code: number; stderr: string }) => e);
  assert.is(none?.code, 2);
  assert.match(none?.stderr ?? '', /Run `mxsentry --help` for the options/);
  // A flag without its value is a usage error too (yargs reports it differently).
  const noValue = await lookup('localhost', '--root-hints');
  assert.is(noValue.code, 2, noValue.stderr);
  assert.match(noValue.stderr, /^mxsentry: Not enough arguments following: root-hints\nRun `mxsentry lookup --help` for the options\.\n$/);
  const noZone = await run(process.execPath, [MXSENTRY_BIN, 'cache', 'flush', '--zone']).then(() => null, (e: { code: number; stderr: string }) => e);
  assert.is(noZone?.code, 2);
  assert.match(noZone?.stderr ?? '', /^mxsentry: Not enough arguments following: zone\nRun `mxsentry cache --help`/);
  // A missing positional argument is named by the command's form, not yargs' count of arguments.
  for (const [args, form] of [[['cache'], 'cache <command>'], [['lookup'], 'lookup <name> [type]'], [['peer'], 'peer <action>']] as const) {
    const r = await run(process.execPath, [MXSENTRY_BIN, ...args]).then(() => null, (e: { code: number; stderr: string }) => e);
    assert.is(r?.code, 2, args.join(' '));
    assert.is(r?.stderr, `mxsentry: missing argument: mxsentry ${form}\nRun \`mxsentry ${args[0]} --help\` for the options.\n`);
  }
});

s('a reader that stops early (| head -1) ends the output quietly: the command\'s own exit code, no EPIPE trace', async () => {
  // The pipe's read end is closed before the command writes, so its writes fail with EPIPE.
  const child = spawn(process.execPath, [MXSENTRY_BIN, 'config', 'example'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  assert.is(code, 0, stderr);
  assert.is(stderr, '');
});

s.run();
