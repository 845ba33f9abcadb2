// In-memory GreylistStore for unit tests of the policy service: same contract as the LMDB store
// (decideNow/transact read both records, call decide synchronously, write its update as one step) plus
// switches to simulate failures. Test-only; it must not be used by src/.
import type { ClientRecord, Decided, DecideOptions, GreylistStore, GreylistUpdate, TripletRecord } from '../../src/store/greylist-types.js';
import { StoreError } from '../../src/util/errors.js';

export class MemoryGreylistStore implements GreylistStore {
  readonly triplets = new Map<string, TripletRecord>();
  readonly clients = new Map<string, ClientRecord>();
  /** Every update written, in order, with its keys. */
  readonly writes: { tripletKey: string; clientKey: string; update: GreylistUpdate }[] = [];
  /** What isHealthy() reports. */
  healthy = true;
  /** When set, the next transact/read rejects with this error (then clears). */
  failNext: Error | undefined;
  /** When true, every transact/read rejects. */
  failAlways = false;

  isHealthy(): boolean {
    return this.healthy;
  }

  async transact<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
  ): Promise<T> {
    return this.decideNow(tripletKey, clientKey, decide).result;
  }

  decideNow<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
    opts?: DecideOptions,
  ): Decided<T> {
    this.maybeFail();
    const { update, result } = decide(clone(this.triplets.get(tripletKey)), clone(this.clients.get(clientKey)));
    if (opts?.dryRun) return { result, written: undefined };
    if (update.triplet) this.triplets.set(tripletKey, clone(update.triplet) as TripletRecord);
    if (update.client) this.clients.set(clientKey, clone(update.client) as ClientRecord);
    this.writes.push({ tripletKey, clientKey, update });
    return { result, written: update.triplet || update.client ? Promise.resolve() : undefined };
  }

  async read(tripletKey: string, clientKey: string): Promise<{ triplet: TripletRecord | undefined; client: ClientRecord | undefined }> {
    this.maybeFail();
    return { triplet: clone(this.triplets.get(tripletKey)), client: clone(this.clients.get(clientKey)) };
  }

  private maybeFail(): void {
    if (this.failAlways) throw new StoreError('STORE_ERR_IO', 'simulated store failure');
    const err = this.failNext;
    if (err) {
      this.failNext = undefined;
      throw err;
    }
  }
}

function clone<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}
