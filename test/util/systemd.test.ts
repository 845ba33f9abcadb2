// listenFds(): sd_listen_fds(3) parsing and environment cleanup; socketFamily() on real sockets.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import { closeSync, openSync } from 'node:fs';
import { listenFds, socketFamily } from '../../src/util/systemd.js';

const s = suite('util/systemd');

s('fds start at 3 and take their names from LISTEN_FDNAMES; the variables are removed', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '4242', LISTEN_FDS: '3', LISTEN_FDNAMES: 'dns-udp:dns-tcp:policy', KEEP: 'x' };
  assert.equal(listenFds(env, 4242), [
    { fd: 3, name: 'dns-udp' },
    { fd: 4, name: 'dns-tcp' },
    { fd: 5, name: 'policy' },
  ]);
  assert.equal(env, { KEEP: 'x' });
});

s('missing names are "unknown"', () => {
  assert.equal(listenFds({ LISTEN_PID: '7', LISTEN_FDS: '2', LISTEN_FDNAMES: 'dns-udp' }, 7), [
    { fd: 3, name: 'dns-udp' },
    { fd: 4, name: 'unknown' },
  ]);
  assert.equal(listenFds({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 7), [{ fd: 3, name: 'unknown' }]);
});

s('variables meant for another process, or malformed, give nothing (and are still removed)', () => {
  const other: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '2' };
  assert.equal(listenFds(other, 7), []);
  assert.equal(other, {});
  assert.equal(listenFds({ LISTEN_FDS: '2' }, 7), []);
  assert.equal(listenFds({ LISTEN_PID: '7', LISTEN_FDS: 'two' }, 7), []);
  assert.equal(listenFds({ LISTEN_PID: '7', LISTEN_FDS: '0' }, 7), []);
  assert.equal(listenFds({ LISTEN_PID: '7x', LISTEN_FDS: '1' }, 7), []);
  assert.equal(listenFds({ LISTEN_PID: '7', LISTEN_FDS: '100000' }, 7), []);
  assert.equal(listenFds({}, 7), []);
});

s('defaults to process.env and process.pid', () => {
  process.env.LISTEN_PID = String(process.pid);
  process.env.LISTEN_FDS = '1';
  process.env.LISTEN_FDNAMES = 'dns-udp';
  try {
    assert.equal(listenFds(), [{ fd: 3, name: 'dns-udp' }]);
    assert.is(process.env.LISTEN_FDS, undefined);
  } finally {
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_FDNAMES;
  }
});

function fdOf(sock: dgram.Socket): number {
  const quiet = process.noDeprecation;
  process.noDeprecation = true; // dgram's _handle getter is deprecated (DEP0112); tests only
  try {
    return (sock as unknown as { _handle: { fd: number } })._handle.fd;
  } finally {
    process.noDeprecation = quiet;
  }
}

s('socketFamily tells udp4 from udp6 sockets, and null for a file', async () => {
  const v4 = dgram.createSocket('udp4');
  const v6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
  const file = openSync('/proc/self/stat', 'r');
  try {
    await new Promise<void>((r) => v4.bind(0, '127.0.0.1', () => r()));
    assert.is(socketFamily(fdOf(v4), 'udp'), 4);
    let v6ok = true;
    await new Promise<void>((r) => {
      v6.once('error', () => {
        v6ok = false; // no IPv6 loopback in this namespace
        r();
      });
      v6.bind(0, '::1', () => r());
    });
    if (v6ok) assert.is(socketFamily(fdOf(v6), 'udp'), 6);
    assert.is(socketFamily(file, 'udp'), null);
    assert.is(socketFamily(fdOf(v4), 'tcp'), null, 'not in the TCP tables');
  } finally {
    closeSync(file);
    v4.close();
    try {
      v6.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
    }
  }
});

s.run();
