// Before the daemon opens its greylist environment, a child process reads all of it (integrity-
// probe-child.ts). A damaged page makes LMDB abort or fault, which in the daemon would take DNS and
// the policy service down with the store, at every start. Called by LmdbEnv.open when asked to
// verify; it never opens LMDB in this process.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StoreError } from '../util/errors.js';
import { StoreErrorCode } from './store-error-code.js';

const CHILD = fileURLToPath(new URL('./integrity-probe-child.js', import.meta.url));

/** The child's argument for a read-only check (integrity-probe-child.ts). */
export const READ_ONLY_ARG = '--read-only';

/** LMDB errors that mean the file's pages are wrong (not permissions or space). */
const DAMAGE_ERRORS = /MDB_(CORRUPTED|PAGE_NOTFOUND|BAD_TXN|INVALID|VERSION_MISMATCH|BAD_VALSIZE)/;

/** What the probe found: the store read through, or could not be checked (and why). */
export type ProbeOutcome = { ok: true } | { ok: false; reason: string };

/**
 * Reads the environment at `path` in a child process. Rejects with StoreError(STORE_ERR_OPEN) when
 * the child died of a signal (LMDB's assertion abort, SIGSEGV or SIGBUS on a damaged file) or LMDB
 * reported damage (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ...).
 * Resolves `{ ok: false }` when it could not tell (a JavaScript error in the child, e.g. permissions,
 * or no answer within `timeoutMs`): the caller's own open then proceeds and reports what it finds.
 * `readOnly`: for an open that will only read, the child opens read-only and skips its write (which
 * would commit a transaction, changing data.mdb).
 */
export function probeEnvironment(path: string, file: string, timeoutMs: number, opts: { readOnly?: boolean } = {}): Promise<ProbeOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, path, ...(opts.readOnly ? [READ_ONLY_ARG] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 2000) stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `could not start the check: ${err.message}` });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') return; // our timeout, already resolved
      // LMDB's own verdicts on a bad page reach the child as errors (exit 3) rather than aborts.
      const lmdbSaysDamaged = code === 3 && DAMAGE_ERRORS.test(stderr);
      // The child's last line is its error (or LMDB's assertion text).
      const detail = stderr.trim().split('\n').slice(-1)[0] ?? '';
      if (signal !== null || code === 134 || code === 135 || code === 139 || lmdbSaysDamaged) {
        const how = lmdbSaysDamaged ? `LMDB reported ${detail}` : `the check process died (${signal ?? `exit ${code}`})${detail ? `: ${detail}` : ''}`;
        reject(new StoreError(StoreErrorCode.OPEN, `${file} is damaged: reading it through, ${how}; restore it or move it away to start empty`));
        return;
      }
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, reason: detail || `exit ${String(code)}` });
    });
  });
}
