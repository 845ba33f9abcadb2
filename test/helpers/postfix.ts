// A throwaway real Postfix (Debian's, DESIGN.md s7) on a loopback port for the end-to-end policy tests,
// plus two SMTP clients: swaks (the admin's tool) and a minimal raw one for what swaks cannot do (no
// HELO). Used by test/e2e/postfix-policy.test.ts. It runs from its own config/queue/data dirs under a
// temp dir, never touches /etc/postfix or the system queue, never listens or connects outside
// 127.0.0.0/8, and always stops its master and removes the temp dir (teardown plus a process 'exit' hook).
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './daemon.js';

/** The address the throwaway Postfix listens on; also the only address in its mynetworks. */
export const POSTFIX_ADDRESS = '127.0.0.1';

const READY_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 20_000;
const PORT_ATTEMPTS = 3;
const POLL_MS = 50;

// Safety net like daemon.ts: the runner ends with process.exit(), so a failed test must still not
// leave a Postfix master (and its children, one process group) or a temp dir behind.
const liveInstances = new Map<string, { masterPid: () => number | null }>();
process.on('exit', () => {
  for (const [dir, inst] of liveInstances) {
    const pid = inst.masterPid();
    if (pid !== null) killGroup(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

export interface PostfixOptions {
  /** Port of the policy service on 127.0.0.1 (check_policy_service inet:127.0.0.1:PORT). */
  policyPort: number;
  /** Domains Postfix accepts mail for (mydestination); every local part is accepted by Postfix itself. */
  domains: string[];
  /**
   * smtpd_policy_service_default_action; default 'DUNNO' (fail open, as DESIGN.md deploys it).
   * Postfix's own default would answer 451 4.3.5 while the policy service is down.
   */
  policyDefaultAction?: string;
  /** Further main.cf settings, written after the defaults (later lines win in Postfix). */
  mainCf?: Record<string, string>;
}

/** A running throwaway Postfix instance. */
export interface PostfixInstance {
  /** The smtpd port on POSTFIX_ADDRESS. */
  readonly port: number;
  /** The temp dir holding etc/, queue/, data/ and maillog (removed by dispose()). */
  readonly dir: string;
  /** Its config_directory (for `postfix -c`). */
  readonly configDir: string;
  /** The maillog so far ('' before postlogd wrote anything). */
  maillog(): string;
  /** Polls the maillog until a line matches, bounded by timeoutMs; returns the line or null. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string | null>;
  /** `postfix -c DIR stop`; falls back to SIGKILL of the master's process group. Idempotent. */
  stop(): Promise<void>;
  /** stop() plus removal of the temp dir. Idempotent; for finally blocks and after hooks. */
  dispose(): Promise<void>;
}

/** The relevant master.cf: chroot off everywhere (column 5 "n"); smtpd only on the test port. */
function masterCf(port: number): string {
  return [
    '# throwaway Postfix of the mxsentry e2e tests (test/helpers/postfix.ts)',
    `${POSTFIX_ADDRESS}:${port} inet n - n - - smtpd`,
    'pickup     unix  n - n 60 1 pickup',
    'cleanup    unix  n - n -  0 cleanup',
    'qmgr       unix  n - n 300 1 qmgr',
    'rewrite    unix  - - n -  - trivial-rewrite',
    'bounce     unix  - - n -  0 bounce',
    'defer      unix  - - n -  0 bounce',
    'trace      unix  - - n -  0 bounce',
    'verify     unix  - - n -  1 verify',
    'flush      unix  n - n 1000? 0 flush',
    'proxymap   unix  - - n -  - proxymap',
    'proxywrite unix  - - n -  1 proxymap',
    'showq      unix  n - n -  - showq',
    'error      unix  - - n -  - error',
    'retry      unix  - - n -  - error',
    'discard    unix  - - n -  - discard',
    'anvil      unix  - - n -  1 anvil',
    'scache     unix  - - n -  1 scache',
    'postlog    unix-dgram n - n - 1 postlogd',
    '',
  ].join('\n');
}

function mainCf(dir: string, opts: PostfixOptions): string {
  const settings: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'mx.mxsentry-test.example',
    mydomain: 'mxsentry-test.example',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    // Only 127.0.0.1 is trusted: test clients use other 127.x addresses so the policy is consulted.
    mynetworks: `${POSTFIX_ADDRESS}/32`,
    mydestination: opts.domains.join(', '),
    // Postfix itself accepts every local part: the policy service's recipient table decides.
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    // Everything accepted is thrown away; nothing ever leaves the machine.
    local_transport: 'discard:',
    default_transport: 'discard:',
    relay_transport: 'discard:',
    // Never use the machine's own resolver.
    smtpd_peername_lookup: 'no',
    smtp_dns_support_level: 'disabled',
    // The empty HELO must reach the policy service (its step 1), not be refused by Postfix.
    smtpd_helo_required: 'no',
    smtpd_recipient_restrictions: `permit_mynetworks, reject_unauth_destination, check_policy_service inet:${POSTFIX_ADDRESS}:${opts.policyPort}`,
    smtpd_policy_service_default_action: opts.policyDefaultAction ?? 'DUNNO',
    // No tarpit sleeps after rejections: they would only slow the tests down.
    smtpd_error_sleep_time: '0',
    smtpd_soft_error_limit: '100',
    smtpd_hard_error_limit: '100',
    biff: 'no',
    // There is no syslog on these machines (DESIGN.md s7).
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    ...opts.mainCf,
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
  return `# throwaway Postfix of the mxsentry e2e tests (test/helpers/postfix.ts)\n${lines.join('\n')}\n`;
}

/** Runs a command with a bound; resolves with its output, rejects with it on failure or timeout. */
function run(file: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ stdout, stderr: err && code === -1 ? `${stderr}${err.message}` : stderr, code });
    });
  });
}

/** The uid of a system user (the postfix mail_owner), from `id -u`. */
async function uidOf(user: string): Promise<number> {
  const r = await run('id', ['-u', user]);
  const uid = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isInteger(uid)) throw new Error(`no system user '${user}' (is Postfix installed?): ${r.stderr.trim()}`);
  return uid;
}

/** SIGKILL to a Postfix master's process group, if that pid is still a Postfix master. */
function killGroup(pid: number): void {
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // already gone
    throw err;
  }
  if (!cmdline.includes('master')) return; // the pid was reused by something else: leave it alone
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Whether a process exists and is not a zombie. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Reads one SMTP greeting line from host:port; resolves true on "220", false on anything else. */
function greets(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: POSTFIX_ADDRESS, port });
    let data = '';
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      data += chunk;
      if (data.includes('\n')) {
        sock.end('QUIT\r\n');
        finish(data.startsWith('220 '));
      }
    });
    sock.on('error', () => finish(false)); // ECONNREFUSED until master listens
  });
}

/**
 * Writes main.cf/master.cf into a fresh temp dir and runs `postfix -c DIR start`, then waits
 * (bounded) until smtpd greets on the port. Needs root (Postfix's master runs as root) and the
 * postfix/postdrop users of the Debian package. A lost race for the random port is retried with
 * another; any other failure throws with the maillog, after cleaning up.
 */
export async function startPostfix(postfixPath: string, opts: PostfixOptions): Promise<PostfixInstance> {
  if (userInfo().uid !== 0) throw new Error('a throwaway Postfix needs root (its master binds and drops privileges)');
  const mailOwnerUid = await uidOf('postfix');
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort(POSTFIX_ADDRESS);
    const instance = await launch(postfixPath, port, mailOwnerUid, opts);
    try {
      await waitUntilGreeting(instance);
      return instance;
    } catch (err) {
      const inUse = /address already in use/i.test(instance.maillog());
      await instance.dispose();
      if (inUse && attempt < PORT_ATTEMPTS) continue;
      throw err;
    }
  }
}

async function launch(postfixPath: string, port: number, mailOwnerUid: number, opts: PostfixOptions): Promise<PostfixInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-postfix-'));
  const configDir = join(dir, 'etc');
  const pidFile = join(dir, 'queue', 'pid', 'master.pid');
  const maillogFile = join(dir, 'maillog');
  const masterPid = (): number | null => {
    if (!existsSync(pidFile)) return null;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  };
  liveInstances.set(dir, { masterPid });
  // Postfix's unprivileged daemons (user postfix) must traverse the temp dir; mkdtemp makes it 0700.
  chmodSync(dir, 0o755);
  mkdirSync(configDir);
  mkdirSync(join(dir, 'queue'));
  mkdirSync(join(dir, 'data'));
  // master.lock and the caches live in data_directory, which must belong to mail_owner.
  chownSync(join(dir, 'data'), mailOwnerUid, -1);
  writeFileSync(join(configDir, 'main.cf'), mainCf(dir, opts));
  writeFileSync(join(configDir, 'master.cf'), masterCf(port));

  const maillog = (): string => (existsSync(maillogFile) ? readFileSync(maillogFile, 'utf8') : '');
  let stopped = false;
  let disposed = false;
  const instance: PostfixInstance = {
    port,
    dir,
    configDir,
    maillog,
    async waitForLog(pattern, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = maillog()
          .split('\n')
          .find((l) => pattern.test(l));
        if (line !== undefined) return line;
        if (Date.now() >= deadline) return null;
        await new Promise((done) => setTimeout(done, POLL_MS));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const pid = masterPid();
      if (pid === null || !isAlive(pid)) return;
      // postfix-script waits up to 5 s for the master, then kills its group itself.
      const r = await run(postfixPath, ['-c', configDir, 'stop']);
      const deadline = Date.now() + 3000;
      while (isAlive(pid) && Date.now() < deadline) await new Promise((done) => setTimeout(done, POLL_MS));
      if (isAlive(pid)) {
        killGroup(pid);
        throw new Error(`postfix -c ${configDir} stop left master ${pid} running (killed): exit ${r.code} ${r.stderr.trim()}`);
      }
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      try {
        await instance.stop();
      } finally {
        const pid = masterPid();
        if (pid !== null && isAlive(pid)) killGroup(pid);
        rmSync(dir, { recursive: true, force: true });
        liveInstances.delete(dir);
      }
    },
  };

  const started = await run(postfixPath, ['-c', configDir, 'start']);
  if (started.code !== 0) {
    const log = maillog();
    await instance.dispose();
    throw new Error(`postfix -c ${configDir} start failed (exit ${started.code}): ${started.stderr.trim()}\n${log}`);
  }
  return instance;
}

async function waitUntilGreeting(instance: PostfixInstance): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await greets(instance.port, 1000)) return;
    if (/fatal:/.test(instance.maillog())) break;
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
  throw new Error(`Postfix on ${POSTFIX_ADDRESS}:${instance.port} did not greet within ${READY_TIMEOUT_MS} ms; maillog:\n${instance.maillog()}`);
}

/** One SMTP reply (the last line of a multi-line one) and the command it answered. */
export interface SmtpReply {
  /** The command line as sent ("RCPT TO:<a@b>", "." for the end of DATA, "" for the greeting). */
  command: string;
  code: number;
  /** The reply text after the code, e.g. "4.2.0 <a@b>: Recipient address rejected: ...". */
  text: string;
}

/** A finished swaks run. */
export interface SwaksResult {
  exitCode: number;
  /** Every reply in order. */
  replies: SmtpReply[];
  /** The reply to RCPT TO, if swaks got that far. */
  rcpt: SmtpReply | undefined;
  /** The reply to the end of DATA ("250 2.0.0 Ok: queued as ..."), if swaks got that far. */
  dataEnd: SmtpReply | undefined;
  /** swaks' whole output, for assertion messages. */
  transcript: string;
}

export interface SwaksOptions {
  /** The Postfix port on POSTFIX_ADDRESS. */
  port: number;
  /** Source address on 127.0.0.0/8: the SMTP client address Postfix sees (swaks --local-interface). */
  localAddress: string;
  helo: string;
  /** Envelope sender; '<>' is the null sender. */
  from: string;
  to: string;
  /** swaks' SMTP timeout in seconds; default 15. */
  timeoutSec?: number;
}

/**
 * Parses swaks' transcript: " -> " lines are what it sent, "<-  " / "<** " lines what it received
 * (a "-" after the code marks a continuation line).
 */
export function parseSwaksTranscript(transcript: string): SmtpReply[] {
  const replies: SmtpReply[] = [];
  let command = '';
  for (const line of transcript.split('\n')) {
    const sent = /^ -> (.*)$/.exec(line);
    if (sent) {
      command = sent[1] ?? '';
      continue;
    }
    const got = /^(?:<-|<\*\*) +(\d{3}) (.*)$/.exec(line);
    if (got) replies.push({ command, code: Number(got[1]), text: (got[2] ?? '').trimEnd() });
  }
  return replies;
}

/** Sends one message with swaks (HELO, MAIL, RCPT, DATA unless refused, QUIT); bounded. */
export async function runSwaks(swaksPath: string, opts: SwaksOptions): Promise<SwaksResult> {
  if (!opts.localAddress.startsWith('127.')) throw new Error(`swaks source ${opts.localAddress} is not loopback`);
  const timeoutSec = opts.timeoutSec ?? 15;
  const args = [
    // Host and port apart: without the recommended IO::Socket::INET6, swaks falls back to INET.
    '--server', POSTFIX_ADDRESS,
    '--port', String(opts.port),
    '--local-interface', opts.localAddress,
    '--helo', opts.helo,
    '--from', opts.from,
    '--to', opts.to,
    '--timeout', `${timeoutSec}s`,
  ];
  const r = await run(swaksPath, args, (timeoutSec + 5) * 1000);
  const transcript = `${r.stdout}${r.stderr}`;
  const replies = parseSwaksTranscript(transcript);
  return {
    exitCode: r.code,
    replies,
    rcpt: replies.find((x) => x.command.startsWith('RCPT TO:')),
    dataEnd: replies.find((x) => x.command === '.'),
    transcript,
  };
}

/**
 * A minimal SMTP client for dialogues swaks cannot hold (MAIL without HELO): reads the greeting,
 * sends each command and reads its (possibly multi-line) reply, then QUIT. Bounded by timeoutMs.
 */
export function smtpDialogue(opts: { port: number; localAddress: string; commands: string[]; timeoutMs?: number }): Promise<SmtpReply[]> {
  if (!opts.localAddress.startsWith('127.')) throw new Error(`SMTP source ${opts.localAddress} is not loopback`);
  const steps = ['', ...opts.commands, 'QUIT'];
  return new Promise((resolve, reject) => {
    const replies: SmtpReply[] = [];
    const sock = net.connect({ host: POSTFIX_ADDRESS, port: opts.port, localAddress: opts.localAddress });
    let buffered = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`SMTP dialogue timed out after ${opts.timeoutMs ?? 10_000} ms; replies so far: ${JSON.stringify(replies)}`));
    }, opts.timeoutMs ?? 10_000);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        const m = /^(\d{3})([ -])(.*)$/.exec(line);
        if (!m) continue;
        if (m[2] === '-') continue; // continuation of a multi-line reply
        replies.push({ command: steps[replies.length] ?? '', code: Number(m[1]), text: m[3] ?? '' });
        const next = steps[replies.length];
        if (next === undefined) {
          clearTimeout(timer);
          sock.end();
          resolve(replies);
          return;
        }
        sock.write(`${next}\r\n`);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(replies); // no-op when already resolved; otherwise the server hung up early
    });
  });
}
