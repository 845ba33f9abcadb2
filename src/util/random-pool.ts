// Cryptographically secure random bytes drawn from a pooled buffer: one randomFillSync (CSPRNG)
// call per 4 KiB instead of one per upstream query. Used for DNS query IDs and 0x20 case bits,
// where unpredictability matters and per-call overhead was measurable on the cold path.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** Copies n fresh random bytes (n <= 4096) into a new Buffer; each byte is handed out once. */
export function secureRandomBytes(n: number): Buffer {
  if (n > POOL_BYTES) return randomFillSync(Buffer.alloc(n));
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + n));
  // Zero what was handed out so a stray reference to the pool never reveals used bytes.
  pool.fill(0, offset, offset + n);
  offset += n;
  return out;
}

/** A uniformly random 16-bit value (a DNS message ID). */
export function secureRandomUint16(): number {
  if (offset + 2 > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const v = pool.readUInt16BE(offset);
  pool.fill(0, offset, offset + 2);
  offset += 2;
  return v;
}
