// Which configuration and store the offline commands pick: --data-dir, the systemd unit's paths for
// the unit's file, the file's data-dir, the default; and the unit's ExecStart names the same paths.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadDaemonConfig, UNIT_PATHS, type UnitPaths } from '../../src/cli/daemon-config.js';
import { packageRoot } from '../../src/util/paths.js';

const s = suite('cli/daemon-config');
let dir = '';
let unit: UnitPaths;

s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-daemon-config-'));
  unit = { configFile: join(dir, 'etc', 'mxsentry.conf'), dataDir: join(dir, 'var-lib-mxsentry'), controlSocket: join(dir, 'run', 'control.sock') };
  mkdirSync(join(dir, 'etc'));
});
s.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = 0;
});

s('no --config and no unit file: flags and defaults, ./data', () => {
  const cfg = loadDaemonConfig({}, unit)!;
  assert.is(cfg.file, undefined);
  assert.is(cfg.dataDir, resolve('data'));
  assert.match(cfg.dataDirFrom, 'the default ./data');
});

s('the unit file is read when present, like the control commands do', () => {
  writeFileSync(unit.configFile, 'delay: 77\ndata-dir: /srv/mx\n');
  const cfg = loadDaemonConfig({}, unit)!;
  assert.is(cfg.file, unit.configFile);
  assert.is(cfg.values['delay'], 77);
  assert.is(cfg.dataDir, '/srv/mx', 'the unit never ran here: the file says where the store is');
  assert.match(cfg.dataDirFrom, `data-dir in ${unit.configFile}`);
});

s('once the unit made its state directory, its --data-dir and --control-socket win for its file', () => {
  writeFileSync(unit.configFile, 'data-dir: /srv/mx\n');
  mkdirSync(unit.dataDir);
  for (const argv of [{}, { config: unit.configFile }]) {
    const cfg = loadDaemonConfig(argv, unit)!;
    assert.is(cfg.dataDir, unit.dataDir);
    assert.is(cfg.values['data-dir'], unit.dataDir);
    assert.is(cfg.values['control-socket'], unit.controlSocket);
    assert.match(cfg.dataDirFrom, 'the systemd unit');
  }
  const flag = loadDaemonConfig({ 'data-dir': join(dir, 'other') }, unit)!;
  assert.is(flag.dataDir, join(dir, 'other'));
  assert.is(flag.dataDirFrom, '--data-dir');
  const other = join(dir, 'other.conf');
  writeFileSync(other, 'data-dir: /srv/other\n');
  assert.is(loadDaemonConfig({ config: other }, unit)!.dataDir, '/srv/other', 'another file is not the unit\'s');
});

s('a broken file: null and exit code 2', () => {
  writeFileSync(unit.configFile, 'no-such-key: 1\n');
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => errors.push(chunk) > 0) as typeof process.stderr.write;
  try {
    assert.is(loadDaemonConfig({}, unit), null);
  } finally {
    process.stderr.write = write;
  }
  assert.is(process.exitCode, 2);
  assert.match(errors.join(''), 'no-such-key');
});

s('the shipped unit runs serve with the paths the CLI assumes', () => {
  const service = readFileSync(join(packageRoot(), 'systemd', 'mxsentry.service'), 'utf8');
  const execStart = /^ExecStart=(.*)$/m.exec(service)?.[1] ?? '';
  assert.match(execStart, ` serve --config ${UNIT_PATHS.configFile} `);
  assert.match(execStart, ` --data-dir ${UNIT_PATHS.dataDir}`);
  assert.match(execStart, ` --control-socket ${UNIT_PATHS.controlSocket}`);
  assert.match(service, new RegExp(`^StateDirectory=${UNIT_PATHS.dataDir.replace('/var/lib/', '')}$`, 'm'));
});

s.run();
