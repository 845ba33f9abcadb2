// Child process of integrity-probe.ts: opens the greylist environment, reads every record of every
// database and runs one small write transaction, then exits 0. LMDB meets a damaged page with a C
// assertion (abort) or a bad memory access, which would end the daemon's own process; here it ends
// only this one, and the parent reads the signal. A JavaScript error exits 3 (not damage: e.g. a
// read-only directory, which the daemon's own open then reports).
import { open } from 'lmdb';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: integrity-probe-child PATH\n');
  process.exit(2);
}
try {
  const root = open({ path, maxDbs: 8, encoding: 'binary' });
  for (const name of ['triplets', 'clients', 'replog', 'cursors', 'meta']) {
    const db = root.openDB<Buffer, string | number>({ name, encoding: 'binary' });
    for (const entry of db.getRange({})) void entry.value;
  }
  // A write allocates pages, which walks LMDB's free-page list: the path a daemon's first write takes.
  const meta = root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
  meta.transactionSync(() => {
    meta.putSync('integrity-probe', Buffer.from([1]));
    meta.removeSync('integrity-probe');
  });
  await root.close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(3);
}
