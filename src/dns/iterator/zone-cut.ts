// A zone cut while the iterator (iterator.ts, its only caller) works on it: the zone, its name
// servers and the addresses learnt for them during this resolution; plus the address helpers the
// iterator shares. Pure: it never reads the cache and never sends a query.
import { isIP } from 'node:net';
import { formatAddress } from '../../util/cidr.js';
import { canonicalName } from '../wire/name.js';
import { rdataNames } from '../wire/rdata.js';
import { RRType, type Name } from '../wire/types.js';

export interface ZoneCut {
  zone: Name;
  nsNames: Name[];
  /** True for the root hints when no root NS is cached. */
  fromHints: boolean;
  /**
   * Addresses of NS names learnt while iterating this cut (the referral's glue, NS-name
   * sub-queries) by canonical NS name: used even when the cache did not keep them (TTL 0).
   */
  addrs?: Map<Name, string[]>;
}

/** Remembers an address of an NS name for this cut (see ZoneCut.addrs). */
export function addCutAddress(cut: ZoneCut, ns: Name, address: string): void {
  cut.addrs ??= new Map();
  const key = canonicalName(ns);
  const list = cut.addrs.get(key);
  if (!list) cut.addrs.set(key, [address]);
  else if (!list.includes(address)) list.push(address);
}

/**
 * NS target names of an NS RRset. Each rdata's name is decoded once per buffer (the cache keeps the
 * same buffers until the RRset is replaced), so every resolution below a cut gets the same strings.
 */
const nsTargetTexts = new WeakMap<Buffer, Name>();
export function nsTargets(ns: { rdatas: Buffer[] }): Name[] {
  const out: Name[] = [];
  for (const d of ns.rdatas) {
    let name = nsTargetTexts.get(d);
    if (name === undefined) {
      name = rdataNames(RRType.NS, d)[0];
      if (name === undefined) continue;
      nsTargetTexts.set(d, name);
    }
    out.push(name);
  }
  return out;
}

/** 127.0.0.0/8 or ::1 (as text from addressFromRdata): asked only with query-loopback (Unbound's do-not-query-localhost). */
export function isLoopbackAddress(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** Unbound's do-not-query-address defaults: loopback unless allowed, and unspecified addresses. */
export function isQueryable(address: string, queryLoopback: boolean): boolean {
  if (address === '0.0.0.0' || address === '::' || address.startsWith('0.')) return false;
  return queryLoopback || !isLoopbackAddress(address);
}

/**
 * Drops, in place, the addresses never to be queried (isQueryable) and the repeats of one (two NS
 * names on one address), keeping the first of each in order; returns the same array. Runs for
 * every upstream query over a zone's handful of addresses: no Set, no copies.
 */
export function keepQueryableOnce(addresses: string[], queryLoopback: boolean): string[] {
  let n = 0;
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i] as string;
    if (isQueryable(a, queryLoopback) && !includedBefore(addresses, a, n)) addresses[n++] = a;
  }
  addresses.length = n;
  return addresses;
}

/** Drops, in place, the addresses already tried; returns the same array (the iterator's own copy). */
export function dropTried(addresses: string[], tried: ReadonlySet<string>): string[] {
  let n = 0;
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i] as string;
    if (!tried.has(a)) addresses[n++] = a;
  }
  addresses.length = n;
  return addresses;
}

/** Whether `a` is among the first `n` entries of `list`. */
function includedBefore(list: readonly string[], a: string, n: number): boolean {
  for (let i = 0; i < n; i++) if (list[i] === a) return true;
  return false;
}

/**
 * The text of a cached A/AAAA rdata, formatted once per rdata buffer: addressesFor runs for every
 * upstream query and the cache keeps the same buffers until the RRset is replaced.
 */
const addressTexts = new WeakMap<Buffer, string>();
export function addressFromRdata(type: number, rdata: Buffer): string {
  let text = addressTexts.get(rdata);
  if (text === undefined) {
    text = formatAddress(type === RRType.A ? 4 : 6, rdata);
    addressTexts.set(rdata, text);
  }
  return text;
}

/** Appends the addresses of the families in use; true when it appended any. */
export function pushFamilies(out: string[], addresses: readonly string[] | undefined, doIp4: boolean, doIp6: boolean): boolean {
  let any = false;
  for (const a of addresses ?? []) {
    const family = isIP(a);
    if ((family === 4 && doIp4) || (family === 6 && doIp6)) {
      out.push(a);
      any = true;
    }
  }
  return any;
}
