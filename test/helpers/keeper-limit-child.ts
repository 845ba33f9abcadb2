// Child process of the socket keeper's descriptor-limit test (dns/transport/socket-keeper.test.ts),
// run under `prlimit --nofile=N:N`: a fake authority on loopback, QUERIES upstream queries over the
// native UDP path 50 at a time, then (once the keeper has closed the used sockets) one JSON line:
// { answered, held } where held is the keeper's socket count.
import { NetTransport } from '../../src/dns/transport/transport.js';
import { RRClass, RRType } from '../../src/dns/wire/types.js';
import { nativeUdp } from '../../src/native/native-udp.js';
import { FakeAuthority } from './fake-authority.js';

const QUERIES = 300;
const server = new FakeAuthority({
  address: '127.53.101.1',
  zones: [{ origin: 'example.com.', records: ['@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300', '@ 3600 IN NS ns1', 'ns1 3600 IN A 127.53.101.1', 'www 300 IN A 192.0.2.1'] }],
});
await server.start();
const transport = new NetTransport({ udpIo: 'native' });
const target = { address: '127.53.101.1', port: server.port };
let answered = 0;
for (let i = 0; i < QUERIES; i += 50) {
  const batch = await Promise.all(Array.from({ length: 50 }, () => transport.query(target, { name: 'www.example.com.', type: RRType.A, class: RRClass.IN }, { tcp: false, edns: true, timeoutMs: 2000 })));
  answered += batch.filter((r) => r.message.answers.length === 1).length;
}
await new Promise((r) => setTimeout(r, 200)); // used sockets are closed within 20 ms
const held = nativeUdp().module?.udpQuerySockets() ?? -1;
await server.stop();
process.stdout.write(`${JSON.stringify({ answered, held })}\n`);
