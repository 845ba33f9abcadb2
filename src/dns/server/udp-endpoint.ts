// The DNS server's UDP listener sockets over one of two I/O paths: the native module
// (src/native/udp-io.c: recvmmsg batches, one call into JavaScript per batch, sendto per reply) when
// it was built, else node:dgram. Both deliver each datagram as a Buffer the receiver may keep, with
// the client's address as Node's rinfo writes it. Called only by dns-server.ts; knows nothing of DNS.
import dgram from 'node:dgram';
import { DnsError, describeError } from '../../util/errors.js';
import { socketFamily } from '../../util/systemd.js';
import { errnoError, nativeUdpFor, type NativeUdp, type UdpIo } from '../../native/native-udp.js';
import { bindError, fmtAddr, type BufferSizeSocket } from './listen-sockets.js';

/** A datagram's handler: `reply` sends to its source. */
export type DatagramHandler = (msg: Buffer, client: string, reply: (bytes: Buffer) => void) => void;

/** One bound UDP listener socket. */
export interface UdpEndpoint {
  /** Which I/O path serves it. */
  readonly io: UdpIo;
  address(): { address: string; port: number; family: string };
  /** SO_RCVBUF / SO_SNDBUF access, for setUdpBuffers. */
  readonly buffers: BufferSizeSocket;
  /** Starts delivering datagrams; socket errors (a failed send, a failed receive) go to onError. */
  start(onDatagram: DatagramHandler, onError: (err: Error) => void): void;
  /** Stops receiving and closes the socket; later replies are dropped. */
  close(): Promise<void>;
}

/** Binds a UDP socket on address:port, exclusively (a second daemon cannot share the port). */
export async function openUdpEndpoint(address: string, port: number, family: 4 | 6, io?: UdpIo): Promise<UdpEndpoint> {
  const native = nativeUdpFor(io, 'DNS_ERR_BIND');
  if (!native) return new DgramEndpoint(await bindDgram(address, port, family));
  try {
    return new NativeEndpoint(native, native.udpOpen(family, address, port, address === '::'));
  } catch (err) {
    throw bindError(err as Error, `${fmtAddr(address, port)}/udp`, port);
  }
}

/** Adopts a UDP socket passed by systemd (LISTEN_FDS). */
export async function adoptUdpEndpoint(fd: number, io?: UdpIo): Promise<UdpEndpoint> {
  // The dgram type must match the socket's family or replies fail with EINVAL (see socketFamily);
  // the check also keeps the native path from adopting another process's or a TCP socket.
  const family = socketFamily(fd, 'udp');
  if (family === null) {
    throw new DnsError('DNS_ERR_BIND', `inherited fd ${fd} is not a UDP socket of this process (check the socket unit's ListenDatagram= and FileDescriptorName=)`);
  }
  const native = nativeUdpFor(io, 'DNS_ERR_BIND');
  if (!native) return new DgramEndpoint(await adoptDgram(fd, family));
  try {
    return new NativeEndpoint(native, native.udpAdopt(fd));
  } catch (err) {
    throw new DnsError('DNS_ERR_BIND', `cannot adopt inherited fd ${fd} as a UDP socket: ${describeError(err)}`, { cause: err });
  }
}

/** Node's dgram socket: one 'message' event per datagram. */
class DgramEndpoint implements UdpEndpoint {
  readonly io = 'dgram';
  readonly buffers: BufferSizeSocket;
  private closed = false;

  constructor(private readonly socket: dgram.Socket) {
    this.buffers = socket;
  }

  address(): { address: string; port: number; family: string } {
    return this.socket.address();
  }

  start(onDatagram: DatagramHandler, onError: (err: Error) => void): void {
    this.socket.on('message', (msg, rinfo) => {
      // No completion callback: it costs a callback into JS per answer; a failed send is emitted
      // as the socket's 'error' (onError). dgram throws on a closed socket: drop instead.
      onDatagram(msg, rinfo.address, (bytes) => {
        if (!this.closed) this.socket.send(bytes, rinfo.port, rinfo.address);
      });
    });
    this.socket.on('error', onError);
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch (err) {
        // ERR_SOCKET_DGRAM_NOT_RUNNING: already closed, which is the goal.
        if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
        resolve();
      }
    });
  }
}

/** Client addresses as text, by their raw IPv4 word: a busy server sees the same clients again. */
const V4_TEXT_CACHE_MAX = 4096;

/** The native module: a batch of datagrams per call, each copied out of the shared slots. */
class NativeEndpoint implements UdpEndpoint {
  readonly io = 'native';
  readonly buffers: BufferSizeSocket;
  private closed = false;
  private readonly v4Text = new Map<number, string>();

  constructor(
    private readonly native: NativeUdp,
    private readonly handle: object,
  ) {
    this.buffers = {
      setRecvBufferSize: (n) => void native.udpBuffer(handle, 'recv', n),
      getRecvBufferSize: () => native.udpBuffer(handle, 'recv'),
      setSendBufferSize: (n) => void native.udpBuffer(handle, 'send', n),
      getSendBufferSize: () => native.udpBuffer(handle, 'send'),
    };
  }

  address(): { address: string; port: number; family: string } {
    return this.native.udpLocal(this.handle);
  }

  start(onDatagram: DatagramHandler, onError: (err: Error) => void): void {
    const { native, handle } = this;
    const words = native.META_WORDS;
    const slot = native.SLOT_BYTES;
    let data: Buffer | undefined;
    let meta: Int32Array | undefined;
    const onBatch = (n: number): void => {
      if (n < 0) {
        onError(errnoError(-n, 'recvmmsg'));
        return;
      }
      for (let i = 0; i < n; i++) {
        const m = i * words;
        const len = meta![m]!;
        const family = meta![m + 1]!;
        const port = meta![m + 2]!;
        const w0 = meta![m + 3]!;
        const w1 = meta![m + 4]!;
        const w2 = meta![m + 5]!;
        const w3 = meta![m + 6]!;
        // A link-local client's interface: the reply must leave through it.
        const scope = meta![m + 7]!;
        // A copy: the slot is overwritten by the next batch, and the slow path keeps the query.
        const msg = Buffer.allocUnsafe(len);
        data!.copy(msg, 0, i * slot, i * slot + len);
        const client = family === 4 ? this.textV4(w0) : native.udpAddressText(6, w0, w1, w2, w3, scope);
        const reply = (bytes: Buffer): void => {
          if (this.closed) return;
          const err = native.udpSend(handle, bytes, family, port, w0, w1, w2, w3, scope);
          if (err !== 0) onError(errnoError(err, 'sendto', `${client}:${port}`));
        };
        try {
          onDatagram(msg, client, reply);
        } catch (err) {
          // The handler never throws (dns-server.ts answers its own errors); should it, the
          // daemon must not die of one datagram.
          onError(err as Error);
        }
      }
    };
    ({ data, meta } = native.udpStart(handle, onBatch));
  }

  private textV4(word: number): string {
    let text = this.v4Text.get(word);
    if (text === undefined) {
      text = this.native.udpAddressText(4, word, 0, 0, 0);
      if (this.v4Text.size >= V4_TEXT_CACHE_MAX) this.v4Text.clear();
      this.v4Text.set(word, text);
    }
    return text;
  }

  close(): Promise<void> {
    this.closed = true;
    this.native.udpClose(this.handle);
    return Promise.resolve();
  }
}

function bindDgram(address: string, port: number, family: 4 | 6): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: address === '::', lookup: literalLookup(family) });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(bindError(err, `${fmtAddr(address, port)}/udp`, port));
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function adoptDgram(fd: number, family: 4 | 6): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family) });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(bindError(err, `fd ${fd}/udp`, 0));
    };
    socket.once('error', onError);
    try {
      socket.bind({ fd }, () => {
        socket.off('error', onError);
        resolve(socket);
      });
    } catch (err) {
      socket.off('error', onError);
      reject(new DnsError('DNS_ERR_BIND', `cannot adopt inherited fd ${fd} as a UDP socket: ${describeError(err)}`, { cause: err }));
    }
  });
}

/**
 * Replies go to the client's IP literal from rinfo: skip the dns.lookup() round dgram.send()
 * would otherwise schedule for every datagram (measurable on the cache-hit path).
 */
function literalLookup(family: 4 | 6): (host: string, opts: unknown, cb: (err: Error | null, address: string, family: number) => void) => void {
  return (host, _opts, cb) => cb(null, host, family);
}
