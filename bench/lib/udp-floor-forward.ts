// The runtime floor for the cold benchmark: the least a Node.js process does per cold name when
// every name costs one upstream query over a fresh UDP socket, as mxsentry's (and Unbound's)
// resolution of a name below cached zone cuts does. For each client query it opens a socket the way
// src/dns/transport/transport.ts does (connected, kernel-chosen random port, no dns.lookup), sends
// the question with a new random ID, RD=0 and an EDNS OPT of 1232 bytes to one fixed authority,
// takes the reply that carries that ID, closes the socket and returns the reply to the client under
// the client's ID; a query without a reply is dropped after a timer, as a resolver's deadline would.
// No parsing beyond the question's end, no cache, no 0x20, no checks of the answer: no DNS work.
// Run as its own process by the DNS bench:
// `node dist/bench/lib/udp-floor-forward.js ADDRESS PORT UPSTREAM_ADDRESS UPSTREAM_PORT`; it prints
// "ready" once bound. Loopback only (the bench gives it the fake authority of the cold zone).
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';

const [address = '127.0.0.1', portText = '0', upstreamAddress = '127.0.0.1', upstreamPortText = '53'] = process.argv.slice(2);
const upstreamPort = Number(upstreamPortText);
const UPSTREAM_TIMEOUT_MS = 2000;
/** Root owner, type OPT (41), UDP size 1232, extended rcode/version/flags 0, no options. */
const OPT = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
const lookup4 = (host: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void => cb(null, host, 4);

// Random IDs from a pooled buffer, refilled from the CSPRNG (mxsentry also draws its IDs from it).
const idPool = Buffer.alloc(4096);
let idOffset = idPool.length;
function randomId(): number {
  if (idOffset + 2 > idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.readUInt16BE(idOffset);
  idOffset += 2;
  return id;
}

/** Offset just past the first question (name, type, class), or -1 when it is cut short. */
function questionEnd(msg: Buffer): number {
  let off = 12;
  while (off < msg.length) {
    const len = msg[off] ?? 0;
    if (len === 0) return off + 5 <= msg.length ? off + 5 : -1;
    if (len >= 0xc0) return -1;
    off += len + 1;
  }
  return -1;
}

const server = dgram.createSocket({ type: 'udp4', lookup: lookup4 });
server.on('message', (msg, rinfo) => {
  const end = msg.length >= 12 && msg.readUInt16BE(4) === 1 ? questionEnd(msg) : -1;
  if (end < 0) return;
  const query = Buffer.allocUnsafe(end + OPT.length);
  const id = randomId();
  query.writeUInt16BE(id, 0);
  query.writeUInt32BE(0, 2); // flags 0 (RD=0), QDCOUNT high byte 0
  query.writeUInt16BE(1, 4);
  query.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  query.writeUInt16BE(1, 10); // ARCOUNT: the OPT
  msg.copy(query, 12, 12, end);
  OPT.copy(query, end);
  const clientId = msg.readUInt16BE(0);
  const upstream = dgram.createSocket({ type: 'udp4', lookup: lookup4 });
  const done = (): void => {
    clearTimeout(timer);
    upstream.removeAllListeners('message');
    // Closed already after an error: close() then throws ERR_SOCKET_DGRAM_NOT_RUNNING, as in the transport.
    try {
      upstream.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
    }
  };
  const timer = setTimeout(done, UPSTREAM_TIMEOUT_MS);
  upstream.on('error', done);
  upstream.on('message', (answer) => {
    if (answer.length < 12 || answer.readUInt16BE(0) !== id) return;
    done();
    answer.writeUInt16BE(clientId, 0);
    server.send(answer, rinfo.port, rinfo.address);
  });
  upstream.once('connect', () => upstream.send(query));
  upstream.connect(upstreamPort, upstreamAddress);
});
server.on('error', (err) => {
  process.stderr.write(`udp-floor-forward: ${err.message}\n`);
  process.exit(1);
});
server.bind(Number(portText), address, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
