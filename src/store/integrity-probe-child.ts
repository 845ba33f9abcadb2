// Child process of integrity-probe.ts: opens the greylist environment, reads every record of every
// database and runs one small write transaction, then exits 0; with --read-only (for a parent that
// will only read) it opens read-only and skips the write, leaving data.mdb as it was. LMDB meets a
// damaged page with a C assertion (abort) or a bad memory access, which would end the daemon's own
// process; here it ends only this one, and the parent reads the signal. A JavaScript error exits 3
// (not damage: e.g. a read-only directory, which the daemon's own open then reports).
import { open } from 'lmdb';

const path = process.argv[2];
const readOnly = process.argv[3] === '--read-only';
if (!path || (process.argv[3] !== undefined && !readOnly)) {
  process.stderr.write('usage: integrity-probe-child PATH [--read-only]\n');
  process.exit(2);
}
try {
  const root = open({ path, maxDbs: 8, encoding: 'binary', ...(readOnly ? { readOnly: true } : {}) });
  for (const name of ['triplets', 'clients', 'replog', 'cursors', 'meta']) {
    // Read-only, a missing database is none (the parent's open names it).
    const db = root.openDB<Buffer, string | number>({ name, encoding: 'binary' }) as ReturnType<typeof root.openDB<Buffer, string | number>> | undefined;
    if (db) for (const entry of db.getRange({})) void entry.value;
  }
  // A write allocates pages, which walks LMDB's free-page list: the path a daemon's first write
  // takes. A reader never takes it, and its commit would change data.mdb.
  if (!readOnly) {
    const meta = root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
    meta.transactionSync(() => {
      meta.putSync('integrity-probe', Buffer.from([1]));
      meta.removeSync('integrity-probe');
    });
  }
  await root.close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(3);
}
