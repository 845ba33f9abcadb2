// First-match lookup over an ordered list of networks in a few map lookups, whatever its length:
// one map per prefix length, keyed by the masked network. Used by CidrSet and the cidr: tables
// (country block lists run to 200,000 lines; a scan of them cost ~10 ms per policy request).
// It keeps no copy of the networks and never changes their order's meaning.
import type { Cidr } from './cidr.js';

interface FamilyIndex {
  /** Distinct prefix lengths present, ascending. */
  prefixes: number[];
  /** prefix -> masked-network key -> lowest index (file order) of a network with that key. */
  byPrefix: Map<number, Map<string, number>>;
}

/** The masked address bytes as a key: one character per byte, only the first `prefix` bits kept. */
function maskedKey(bytes: Uint8Array, prefix: number): string {
  let key = '';
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) key += String.fromCharCode(bytes[i] ?? 0);
  const rest = prefix & 7;
  if (rest > 0) key += String.fromCharCode((bytes[full] ?? 0) & ((0xff << (8 - rest)) & 0xff));
  return key;
}

/** Index of an ordered list of networks; `first` gives the same answer as a scan in order. */
export class CidrIndex {
  private readonly families: Record<4 | 6, FamilyIndex> = {
    4: { prefixes: [], byPrefix: new Map() },
    6: { prefixes: [], byPrefix: new Map() },
  };

  constructor(nets: readonly Cidr[]) {
    for (let i = 0; i < nets.length; i++) {
      const net = nets[i] as Cidr;
      const fam = this.families[net.family];
      let keys = fam.byPrefix.get(net.prefix);
      if (!keys) {
        keys = new Map();
        fam.byPrefix.set(net.prefix, keys);
      }
      const key = maskedKey(net.bytes, net.prefix);
      if (!keys.has(key)) keys.set(key, i);
    }
    for (const fam of Object.values(this.families)) fam.prefixes = [...fam.byPrefix.keys()].sort((a, b) => a - b);
  }

  /** Index of the first network (in list order) containing the address, or -1. */
  first(addr: { family: 4 | 6; bytes: Uint8Array }): number {
    const fam = this.families[addr.family];
    let best = -1;
    for (const prefix of fam.prefixes) {
      const hit = fam.byPrefix.get(prefix)?.get(maskedKey(addr.bytes, prefix));
      if (hit !== undefined && (best < 0 || hit < best)) best = hit;
    }
    return best;
  }
}
