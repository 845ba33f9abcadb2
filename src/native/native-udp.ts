// Loads the native UDP I/O module (udp-io.c, built by build.ts into dist/native/udp-io.node) once,
// for the DNS server's listeners (dns/server/udp-endpoint.ts) and the upstream transport
// (dns/transport/transport.ts), and turns its errno numbers into Node-style errors. It does no I/O.
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { DnsError, describeError } from '../util/errors.js';

/** The module's surface (see udp-io.c for each function's contract). */
export interface NativeUdp {
  BATCH: number;
  SLOT_BYTES: number;
  META_WORDS: number;
  udpOpen(family: 4 | 6, address: string, port: number, v6only: boolean): object;
  udpAdopt(fd: number): object;
  udpStart(h: object, onBatch: (n: number) => void): { data: Buffer; meta: Int32Array };
  udpSend(h: object, bytes: Buffer, family: number, port: number, w0: number, w1: number, w2: number, w3: number, scope: number): number;
  udpAddressText(family: number, w0: number, w1: number, w2: number, w3: number, scope?: number): string;
  udpLocal(h: object): { address: string; port: number; family: string };
  udpBuffer(h: object, which: 'recv' | 'send', bytes?: number): number;
  udpClose(h: object): void;
  udpQuery(family: 4 | 6, address: string, port: number, query: Buffer, onDatagram: (errno: number, answer: Buffer | undefined, syscall: string | undefined) => void): object;
  udpQueryClose(h: object): void;
  udpQuerySockets(): number;
}

let loaded: { module: NativeUdp | undefined; problem: string | undefined } | undefined;

/**
 * The native module: undefined when it was not built (npm run build says why), or when
 * MXSENTRY_UDP_IO=dgram asks for node:dgram (a way around a suspected fault of the module).
 */
export function nativeUdp(): { module: NativeUdp | undefined; problem: string | undefined } {
  if (loaded) return loaded;
  if (process.env.MXSENTRY_UDP_IO === 'dgram') {
    loaded = { module: undefined, problem: 'MXSENTRY_UDP_IO=dgram' };
    return loaded;
  }
  try {
    // dist/src/native/native-udp.js -> dist/native/udp-io.node
    const module = createRequire(import.meta.url)('../../native/udp-io.node') as NativeUdp;
    loaded = { module, problem: undefined };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    loaded = { module: undefined, problem: code === 'MODULE_NOT_FOUND' ? 'not built (no C compiler at npm run build?)' : `cannot be loaded: ${describeError(err)}` };
  }
  return loaded;
}

/** A UDP I/O path: the native module, or node:dgram. */
export type UdpIo = 'native' | 'dgram';

/**
 * The module for a caller's choice of path: undefined for 'dgram', or when it is not there and no
 * path was named (the default falls back to dgram); a caller (a test) that names 'native' gets a
 * DnsError with `code` when it is not there.
 */
export function nativeUdpFor(io: UdpIo | undefined, code: string): NativeUdp | undefined {
  if (io === 'dgram') return undefined;
  const { module, problem } = nativeUdp();
  if (!module && io === 'native') throw new DnsError(code, `the native UDP I/O module is ${problem ?? 'unavailable'}`);
  return module;
}

/** An Error as Node's socket errors look: code (EAGAIN, ...), errno, syscall. */
export function errnoError(errno: number, syscall: string, peer?: string): Error {
  const code = getSystemErrorName(-errno);
  return Object.assign(new Error(`${syscall} ${code}${peer ? ` ${peer}` : ''}`), { code, errno: -errno, syscall });
}
