// The kernel's count of UDP datagrams dropped on receive (full socket buffers), system-wide, from
// /proc/net/snmp. The DNS bench reads it around each run so that losses can be told apart: a drop
// here is a socket that did not keep up (resolver, fake authority or dnsperf), not the network.
// Read-only; Linux only.
import { readFileSync } from 'node:fs';
import { MxError } from '../../src/util/errors.js';

/** UDP InErrors (receive errors, RcvbufErrors included) since boot, all sockets of the machine. */
export function udpReceiveErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('InErrors');
  const v = Number(values[i]);
  if (i < 0 || !Number.isFinite(v)) throw new MxError('BENCH_ERR_PROC', 'no Udp InErrors in /proc/net/snmp');
  return v;
}
