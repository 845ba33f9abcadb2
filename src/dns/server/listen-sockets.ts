// Socket plumbing of the DNS server: TCP listeners (an address or a systemd fd), UDP buffer sizes,
// and bind errors turned into messages that tell the admin what to do. Called by dns-server.ts and
// udp-endpoint.ts (which binds and adopts the UDP sockets); it knows nothing of DNS messages.
import net from 'node:net';
import { DnsError, describeError } from '../../util/errors.js';

/** Listens for TCP on an address or an inherited fd; `what` names it in errors. */
export function listenTcpServer(opts: net.ListenOptions | { fd: number }, what: string, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.close();
      reject(bindError(err, what, 'port' in opts ? (opts.port ?? 0) : 0));
    };
    server.once('error', onError);
    try {
      server.listen(opts, () => {
        server.off('error', onError);
        resolve(server);
      });
    } catch (err) {
      server.off('error', onError);
      reject(new DnsError('DNS_ERR_BIND', `cannot listen on ${what}: ${describeError(err)}`, { cause: err }));
    }
  });
}

/** Requested kernel buffer sizes of the UDP listeners, bytes; 0 leaves the OS default. */
export interface UdpBufferSizes {
  recvBytes: number;
  sendBytes: number;
}

/** What setUdpBuffers needs of a socket: a dgram.Socket has it, and so has a native endpoint (udp-endpoint.ts). */
export interface BufferSizeSocket {
  setRecvBufferSize(bytes: number): void;
  getRecvBufferSize(): number;
  setSendBufferSize(bytes: number): void;
  getSendBufferSize(): number;
}

/** What setUdpBuffers asked for and what the kernel reports (Linux reports twice the granted value). */
export interface UdpBufferOutcome {
  option: 'so-rcvbuf' | 'so-sndbuf';
  requested: number;
  /** getsockopt's answer after the request (on Linux twice the granted size), or null when setting it failed. */
  got: number | null;
  /** Set when the kernel gave less than asked or refused: what the admin should do. */
  problem?: string;
}

/**
 * Sets SO_RCVBUF / SO_SNDBUF on a bound UDP listener (Unbound's so-rcvbuf / so-sndbuf): room for a
 * burst of queries while the event loop is busy, instead of kernel drops. The native endpoint forces
 * the size where the process may (SO_RCVBUFFORCE, as Unbound); dgram cannot, and without the
 * privilege the kernel caps the request at net.core.rmem_max (wmem_max). The outcome says when it
 * gave less than asked, for the caller to log. Never throws.
 */
export function setUdpBuffers(socket: BufferSizeSocket, sizes: UdpBufferSizes): UdpBufferOutcome[] {
  const out: UdpBufferOutcome[] = [];
  const apply = (option: UdpBufferOutcome['option'], requested: number, set: (n: number) => void, get: () => number, sysctl: string): void => {
    if (requested <= 0) return;
    let got: number | null = null;
    try {
      set(requested);
      got = get();
    } catch (err) {
      out.push({ option, requested, got: null, problem: `the kernel refused it (${describeError(err)})` });
      return;
    }
    const outcome: UdpBufferOutcome = { option, requested, got };
    // Linux doubles the value it grants (bookkeeping overhead) and reports the double: compare the grant.
    const granted = process.platform === 'linux' ? Math.floor(got / 2) : got;
    if (granted < requested) outcome.problem = `granted ${granted} bytes only; raise ${sysctl} (sysctl -w ${sysctl}=${requested}) or lower ${option}`;
    out.push(outcome);
  };
  apply('so-rcvbuf', sizes.recvBytes, (n) => socket.setRecvBufferSize(n), () => socket.getRecvBufferSize(), 'net.core.rmem_max');
  apply('so-sndbuf', sizes.sendBytes, (n) => socket.setSendBufferSize(n), () => socket.getSendBufferSize(), 'net.core.wmem_max');
  return out;
}

export function fmtAddr(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Maps a bind/listen errno to an error that tells the admin what to do.
 * @param what the endpoint as the admin wrote it, e.g. "127.0.0.1:53/udp".
 */
export function bindError(err: Error, what: string, port: number): DnsError {
  const code = (err as NodeJS.ErrnoException).code;
  if ((code === 'EACCES' || code === 'EPERM') && port > 0 && port < 1024) {
    return new DnsError(
      'DNS_ERR_BIND_PRIVILEGE',
      `cannot listen on ${what}: ports below 1024 need privilege. Run as root, use the systemd unit ` +
        `(it grants CAP_NET_BIND_SERVICE), grant the capability to node with ` +
        `setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")", or choose another --dns-listen port`,
      { cause: err },
    );
  }
  if (code === 'EADDRINUSE') {
    return new DnsError(
      'DNS_ERR_BIND_IN_USE',
      `cannot listen on ${what}: the address is in use. Another DNS server holds it ` +
        `(on port 53 often systemd-resolved's stub listener, unbound, dnsmasq or bind; see \`ss -lunp 'sport = :${port}'\`); ` +
        `stop it (for systemd-resolved: DNSStubListener=no) or choose another --dns-listen address`,
      { cause: err },
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new DnsError('DNS_ERR_BIND_ADDRESS', `cannot listen on ${what}: the address is not configured on this host`, { cause: err });
  }
  return new DnsError('DNS_ERR_BIND', `cannot listen on ${what}: ${describeError(err)}`, { cause: err });
}
