// The request mix of the policy bench: Postfix 3.7 RCPT-stage requests (29 attributes) from many
// client addresses, a share repeating triplets from a fixed pool (known senders retrying or
// sending again) and the rest fresh triplets from other clients. Deterministic from a seed, so both
// daemons get the same sequence. Used by bench/lib/policy-load.ts. Client addresses are strings in
// the requests only: nothing is ever sent to them. Pure: no I/O, no clock.
import { POSTFIX_37_ATTRIBUTES } from '../../test/policy/fixtures.js';

/** Shape of the traffic; the same object must be given to every run that shares the pool. */
export interface PolicyTrafficOptions {
  /** Seed of the pool (clients, senders, recipients of the repeated triplets). */
  poolSeed: string;
  /** Triplets in the repeat pool. */
  poolTriplets: number;
  /** Distinct clients the pool's triplets come from (10.1.0.0/16 and up, one /24 each). */
  poolClients: number;
  /** Distinct clients that send fresh triplets (10.128.0.0/16 and up, one /24 each). */
  freshClients: number;
  /** Share of requests that repeat a pool triplet, 0..1; the rest are fresh triplets. */
  repeatShare: number;
}

/** One request on the wire, and whether it repeats a pool triplet. */
export interface TrafficRequest {
  wire: string;
  repeated: boolean;
}

/** Seeded sfc32 PRNG (deterministic, not for secrets), its state from a cyrb128-style string hash. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    let h1 = 1779033703;
    let h2 = 3144134277;
    let h3 = 1013904242;
    let h4 = 2773480762;
    for (let i = 0; i < seed.length; i++) {
      const k = seed.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    this.a = (h1 ^ h2 ^ h3 ^ h4) >>> 0;
    this.b = (h2 ^ h1) >>> 0;
    this.c = (h3 ^ h1) >>> 0;
    this.d = (h4 ^ h1) >>> 0;
    for (let i = 0; i < 15; i++) this.next(); // sfc32 mixes its state in the first outputs
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Lower-case letters only, so postgrey's sender normalisation (which turns all-digit words into
 * '#', e.g. VERP counters) cannot merge two distinct fresh senders.
 */
export function letterCode(n: number, minLength = 4): string {
  let s = '';
  let v = Math.max(0, Math.floor(n));
  do {
    s = String.fromCharCode(97 + (v % 26)) + s;
    v = Math.floor(v / 26);
  } while (v > 0);
  return s.padStart(minLength, 'a');
}

/** Address of the i-th pool client: one /24 each, so each is its own greylisting client. */
export function poolClientAddress(i: number): string {
  return `10.${1 + (i >> 8)}.${i & 255}.25`;
}

/** Address of the j-th fresh-triplet client (disjoint from the pool clients). */
export function freshClientAddress(j: number): string {
  return `10.${128 + (j >> 8)}.${j & 255}.${2 + (j % 250)}`;
}

interface Triplet {
  client: string;
  clientName: string;
  helo: string;
  sender: string;
  recipient: string;
}

const SENDER_DOMAINS = ['lists.example.org', 'shop.example.com', 'mail.example.net', 'example.org', 'news.example.com'];
const LOCAL_DOMAINS = ['example.com', 'example.org', 'staff.example.net'];
const LOCAL_USERS = 200;

/** The Postfix 3.7 request for one triplet, with per-message attributes (instance, port, size). */
export function encodeTripletRequest(t: Triplet, instance: string, clientPort: number, size: number): string {
  const overrides: Record<string, string> = {
    helo_name: t.helo,
    sender: t.sender,
    recipient: t.recipient,
    client_address: t.client,
    client_name: t.clientName,
    reverse_client_name: t.clientName,
    instance,
    client_port: String(clientPort),
    size: String(size),
  };
  let out = '';
  for (const [k, v] of POSTFIX_37_ATTRIBUTES) out += `${k}=${overrides[k] ?? v}\n`;
  return `${out}\n`;
}

/** The attribute count of every request (29 for Postfix 3.7). */
export const ATTRIBUTES_PER_REQUEST = POSTFIX_37_ATTRIBUTES.length;

/** The pool and client sets of one bench, and the request streams drawn from them. */
export class PolicyTraffic {
  private readonly pool: Triplet[] = [];

  constructor(readonly options: PolicyTrafficOptions) {
    const rnd = new SeededRandom(`pool:${options.poolSeed}`);
    for (let i = 0; i < options.poolTriplets; i++) {
      const c = i % options.poolClients;
      this.pool.push({
        client: poolClientAddress(c),
        clientName: `mx-${letterCode(c)}.senders.example`,
        helo: `mx-${letterCode(c)}.senders.example`,
        sender: `${letterCode(rnd.below(26 ** 5), 5)}@${SENDER_DOMAINS[rnd.below(SENDER_DOMAINS.length)] ?? 'example.org'}`,
        recipient: this.localRecipient(rnd),
      });
    }
  }

  /**
   * Warm-up requests: every pool triplet once, plus one fresh-sender request from each fresh
   * client (so every client address's DNSBL answer is in mxsentry's cache). `runSeed` keeps the
   * warm-up senders of different passes distinct.
   */
  warmupRequests(runSeed: string): string[] {
    const out: string[] = [];
    for (const [i, t] of this.pool.entries()) out.push(encodeTripletRequest(t, `warm.${letterCode(i)}`, 40000 + (i % 20000), 1024));
    const tag = letterCode(new SeededRandom(`warm:${runSeed}`).below(26 ** 6), 6);
    for (let j = 0; j < this.options.freshClients; j++) {
      out.push(encodeTripletRequest(this.freshTriplet(j, `warmup-${tag}-${letterCode(j)}`, new SeededRandom(`warm:${runSeed}:${j}`)), `warm.f${letterCode(j)}`, 40000 + (j % 20000), 1024));
    }
    return out;
  }

  /**
   * The request stream of one connection of one run: `repeatShare` of it repeats pool triplets,
   * the rest are fresh triplets, unique per (runSeed, connection, index).
   */
  stream(runSeed: string, connection: number): () => TrafficRequest {
    const rnd = new SeededRandom(`run:${runSeed}:${connection}`);
    const runTag = letterCode(new SeededRandom(`tag:${runSeed}`).below(26 ** 6), 6);
    let n = 0;
    return () => {
      const i = n++;
      const instance = `${connection.toString(16)}.${i.toString(16)}`;
      const clientPort = 1024 + rnd.below(60000);
      const size = 1000 + rnd.below(100000);
      if (this.pool.length > 0 && rnd.next() < this.options.repeatShare) {
        const t = this.pool[rnd.below(this.pool.length)] as Triplet;
        return { wire: encodeTripletRequest(t, instance, clientPort, size), repeated: true };
      }
      const local = `${runTag}-${letterCode(connection, 2)}-${letterCode(i)}`;
      const t = this.freshTriplet(rnd.below(Math.max(1, this.options.freshClients)), local, rnd);
      return { wire: encodeTripletRequest(t, instance, clientPort, size), repeated: false };
    };
  }

  private freshTriplet(j: number, senderLocal: string, rnd: SeededRandom): Triplet {
    return {
      client: freshClientAddress(j),
      clientName: `out-${letterCode(j)}.bulk.example`,
      helo: `out-${letterCode(j)}.bulk.example`,
      sender: `${senderLocal}@${SENDER_DOMAINS[rnd.below(SENDER_DOMAINS.length)] ?? 'example.org'}`,
      recipient: this.localRecipient(rnd),
    };
  }

  private localRecipient(rnd: SeededRandom): string {
    return `user-${letterCode(rnd.below(LOCAL_USERS), 2)}@${LOCAL_DOMAINS[rnd.below(LOCAL_DOMAINS.length)] ?? 'example.com'}`;
  }
}
