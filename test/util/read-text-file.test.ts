// The files read synchronously (config, local zones) are refused at once when they are not regular
// files (a FIFO, a directory, a device), before a byte is read: a FIFO would block the event loop.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/load.js';
import { loadRootHints } from '../../src/main.js';
import { MAX_TEXT_FILE_BYTES, readTextFile, readTextFileSync } from '../../src/util/read-text-file.js';
import { RecipientTable } from '../../src/policy/tables/recipient-table.js';

const s = suite('util/read-text-file');
let dir = '';
s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-read-'));
});
s.after.each(() => rmSync(dir, { recursive: true, force: true }));

s('a regular file is read as UTF-8 text', () => {
  const file = join(dir, 'a.conf');
  writeFileSync(file, 'delay: 60 # é\n');
  assert.is(readTextFileSync(file), 'delay: 60 # é\n');
});

s('a FIFO without a writer, a directory and a device are refused at once', () => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (const [path, kind] of [[fifo, /is a FIFO, not a regular file/], [dir, /is a directory/], ['/dev/zero', /is a device/]] as const) {
    assert.throws(() => readTextFileSync(path), kind);
  }
  // The root hints too (config check and every start used to block on a FIFO there).
  assert.throws(() => loadRootHints(fifo), /is a FIFO, not a regular file/);
  const loaded = loadConfig({ file: fifo });
  assert.equal(loaded.errors.map((e) => e.code), ['CONFIG_ERR_READ']);
  assert.match(loaded.errors[0]?.message ?? '', /cannot read config file .*fifo.*FIFO/);
});

s('a missing file keeps its ENOENT code', () => {
  assert.throws(() => readTextFileSync(join(dir, 'missing.conf')), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
});

s('a file over the size cap is refused, read either way; /dev/zero as a table fails without eating memory', async () => {
  const big = join(dir, 'big');
  writeFileSync(big, '');
  truncateSync(big, MAX_TEXT_FILE_BYTES + 1);
  assert.throws(() => readTextFileSync(big), /larger than 64 MiB/);
  await readTextFile(big).then(() => assert.unreachable('read'), (err: Error) => assert.match(err.message, /larger than 64 MiB/));
  const before = process.memoryUsage().rss;
  const err = await RecipientTable.load(['/dev/zero']).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? '', /larger than 64 MiB/);
  assert.ok(process.memoryUsage().rss - before < 300 * 1024 * 1024, 'memory stays bounded');
  writeFileSync(big, 'a@example.com OK\n');
  assert.is(await readTextFile(big), 'a@example.com OK\n');
  await readTextFile(join(dir, 'missing')).then(() => assert.unreachable('read'), (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'));
});

s.run();
