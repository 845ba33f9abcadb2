// The runtime floor for the cache-hit benchmark: the least a Node.js process can do per DNS query
// over UDP (receive, copy, set QR, send), with no DNS work at all. Run as its own process by the DNS
// bench (`node dist/bench/lib/udp-floor-echo.js ADDRESS PORT`); it prints "ready" once bound.
import dgram from 'node:dgram';

const [address = '127.0.0.1', portText = '0'] = process.argv.slice(2);
// The same socket options as mxsentry's listener (no per-send dns.lookup), so the floor is fair.
const socket = dgram.createSocket({ type: 'udp4', lookup: (host, _opts, cb) => cb(null, host, 4) });
socket.on('message', (msg, rinfo) => {
  const reply = Buffer.from(msg);
  if (reply.length >= 3) reply[2] = (reply[2] ?? 0) | 0x80;
  socket.send(reply, rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  process.stderr.write(`udp-floor-echo: ${err.message}\n`);
  process.exit(1);
});
socket.bind(Number(portText), address, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
