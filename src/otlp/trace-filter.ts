/** Bits per trace id and probes per lookup: about 1% false positives at capacity. */
const BITS_PER_ID = 10;
const PROBES = 7;

/** Two 32-bit hashes of a string (FNV-1a and a murmur-style mix), for double hashing. */
function hashes(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  return [a >>> 0, (b ^ (b >>> 16)) | 1];
}

/**
 * The trace ids that have spans in the store, as a Bloom filter: "no" is certain, "maybe" is
 * right about 99 times in 100 at capacity. A span of a trace the filter has never seen needs
 * no look in the store for earlier spans, which is nearly every span of a new trace.
 */
export class TraceFilter {
  private readonly bits: Uint32Array;
  private readonly size: number;
  private count = 0;

  constructor(readonly capacity: number) {
    this.size = Math.max(64, Math.ceil(capacity * BITS_PER_ID));
    this.bits = new Uint32Array(Math.ceil(this.size / 32));
  }

  /** More ids than it was sized for: its false positives grow, it should be rebuilt larger. */
  get full(): boolean {
    return this.count > this.capacity;
  }

  add(id: string): void {
    const [h1, h2] = hashes(id);
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const at = bit % this.size;
      this.bits[at >>> 5] = (this.bits[at >>> 5] as number) | (1 << (at & 31));
    }
    this.count += 1;
  }

  mightHave(id: string): boolean {
    const [h1, h2] = hashes(id);
    for (let i = 0; i < PROBES; i++) {
      const at = ((h1 + Math.imul(i, h2)) >>> 0) % this.size;
      if (((this.bits[at >>> 5] as number) & (1 << (at & 31))) === 0) return false;
    }
    return true;
  }
}
