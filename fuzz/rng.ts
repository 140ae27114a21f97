/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) so that every fuzz input can be
 * rebuilt from three numbers: the run's seed, the target's name and the input's index. No input
 * depends on the ones before it, which is what makes `--index` replay exact.
 *
 * @module
 */

/** splitmix32: spreads one 32-bit value over the whole word; used only for seeding. */
function splitmix32(state: number): [next: number, out: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** FNV-1a over a string's UTF-16 code units; turns a target name into a stream number. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A deterministic source of random numbers. Not for anything but tests. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator for one input: the same (seed, stream, index) always gives the same numbers. */
  constructor(seed: number, stream = 0, index = 0) {
    let s = (seed ^ Math.imul(stream, 0x27d4eb2f)) | 0;
    let out: number;
    [s, out] = splitmix32(s ^ Math.imul(index, 0x165667b1));
    this.#a = out;
    [s, out] = splitmix32(s ^ Math.floor(index / 0x100000000));
    this.#b = out;
    [s, out] = splitmix32(s);
    this.#c = out;
    [s, out] = splitmix32(s);
    this.#d = out;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1; // the one forbidden state
  }

  /** The generator for input `index` of the target named `target` in the run seeded `seed`. */
  static forInput(seed: number, target: string, index: number): Rng {
    return new Rng(seed, hashName(target), index);
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 0x100000000;
  }

  /** A uniform integer in [0, n); 0 when n ≤ 1. */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty list (or one character of a string). */
  pick<T>(items: ArrayLike<T>): T {
    return items[this.below(items.length)];
  }

  /**
   * A length in [0, max] where small values are as likely as large ones on a log scale: fuzzing
   * needs many 0-, 1- and 2-byte cases and a few huge ones.
   */
  size(max: number): number {
    const bits = Math.ceil(Math.log2(max + 1));
    return Math.min(max, this.below(2 ** this.int(0, bits)));
  }

  /** n uniform random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** Fisher–Yates, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
