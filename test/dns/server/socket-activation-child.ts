// Child process for the socket-activation test: started through `sh -c 'LISTEN_PID=$$ ... exec
// node this.js'` with inherited sockets on fds 3 and 4, as systemd would. It adopts them through
// listenFds() and DnsServer's fd endpoints, prints one JSON line, and exits 0 on SIGTERM after close().
import { DnsServer } from '../../../src/dns/server/dns-server.js';
import { LocalZones } from '../../../src/dns/server/local-zones.js';
import { CidrSet } from '../../../src/util/cidr.js';
import { SystemClock } from '../../../src/util/clock.js';
import { createSilentLogger } from '../../../src/util/logger.js';
import { listenFds } from '../../../src/util/systemd.js';
import { FakeRecursor, aRecord } from './dns-test-client.js';

const fds = listenFds();
const recursor = new FakeRecursor();
recursor.table.set('activated.example.', [aRecord('activated.example.', '192.0.2.99')]);
const server = new DnsServer({
  recursor,
  packetCache: null,
  localZones: new LocalZones(),
  allow: new CidrSet(['127.0.0.0/8']),
  logger: createSilentLogger(),
  clock: new SystemClock(),
});
await server.listen(fds.map((f) => ({ fd: f.fd, kind: f.name === 'dns-tcp' ? ('tcp' as const) : ('udp' as const) })));
process.stdout.write(`${JSON.stringify({
  fds,
  envLeft: ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'].filter((k) => process.env[k] !== undefined),
  addresses: server.addresses(),
})}\n`);
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
