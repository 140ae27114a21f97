/**
 * Byte-level mutations shared by the binary targets. Each returns a new array and leaves its
 * input alone, so seeds can be reused.
 *
 * @module
 */

import { concat } from "../proxy/_testing/hello_builder.ts";
import type { Rng } from "./rng.ts";

/** A big-endian length (or count) field found in a structured input. */
export interface LengthField {
  /** Where each byte of the field lies in the buffer, most significant first. */
  at: number[];
  /** The bytes the field should cover: what is left of its container after the field. */
  container: number;
}

/** Bytes worth trying wherever a byte goes. */
export const BOUNDARY_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x20, 0x0d, 0x0a] as const;

/** 16-bit values that mean something in the formats fuzzed here. */
const INTERESTING_U16 = [
  0x0000,
  0x0001,
  0x00ff,
  0x0100,
  0x7fff,
  0x8000,
  0xffff,
  0x4000,
  0x4001,
  0x0303,
  0x0304,
  0xfe0d,
  0x0010,
  0x002b,
];

function readField(buf: Uint8Array, field: LengthField): number {
  let v = 0;
  for (const i of field.at) v = v * 256 + buf[i];
  return v;
}

function writeField(buf: Uint8Array, field: LengthField, value: number): void {
  const max = 256 ** field.at.length;
  let v = ((value % max) + max) % max;
  for (let k = field.at.length - 1; k >= 0; k--) {
    buf[field.at[k]] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

/** Sets a length field to 0, its maximum, ±1, its container size ±1, or something random. */
export function editLengthField(rng: Rng, buf: Uint8Array, field: LengthField): Uint8Array {
  const out = buf.slice();
  const v = readField(out, field);
  const max = 256 ** field.at.length - 1;
  const choices = [
    0,
    max,
    v + 1,
    v - 1,
    field.container,
    field.container + 1,
    field.container - 1,
    1,
    max - 1,
    rng.below(max + 1),
  ];
  writeField(out, field, rng.pick(choices));
  return out;
}

/** A length field at a random place, for inputs whose structure is not known. */
function blindLengthField(rng: Rng, buf: Uint8Array): LengthField | null {
  if (buf.length === 0) return null;
  const width = rng.int(1, 3);
  const at0 = rng.below(buf.length);
  const at: number[] = [];
  for (let k = 0; k < width && at0 + k < buf.length; k++) at.push(at0 + k);
  return { at, container: buf.length - at0 - at.length };
}

/** Options of {@linkcode mutateBytes}. */
export interface MutateOptions {
  /** Finds the length fields of a (possibly already mutated) input. */
  lengthFields?: (buf: Uint8Array) => LengthField[];
  /** Other inputs to splice with. */
  donors?: readonly Uint8Array[];
  /** Longest input to produce; growth stops there. */
  maxLength?: number;
}

/** Applies one random mutation. */
export function mutateOnce(rng: Rng, buf: Uint8Array, opts: MutateOptions = {}): Uint8Array {
  const n = buf.length;
  const maxLength = opts.maxLength ?? 1 << 20;
  const op = rng.below(12);
  switch (op) {
    case 0: { // bit flips
      if (n === 0) return rng.bytes(1);
      const out = buf.slice();
      const flips = rng.int(1, 4);
      for (let i = 0; i < flips; i++) out[rng.below(n)] ^= 1 << rng.below(8);
      return out;
    }
    case 1: { // a byte set to a boundary value
      if (n === 0) return Uint8Array.of(rng.pick(BOUNDARY_BYTES));
      const out = buf.slice();
      out[rng.below(n)] = rng.pick(BOUNDARY_BYTES);
      return out;
    }
    case 2:
    case 3: { // a length field edited (twice as likely: it is where parsers go wrong)
      const fields = opts.lengthFields?.(buf) ?? [];
      const field = fields.length > 0 && rng.chance(0.85)
        ? rng.pick(fields)
        : blindLengthField(rng, buf);
      return field === null ? buf.slice() : editLengthField(rng, buf, field);
    }
    case 4: { // truncation
      return buf.slice(0, rng.below(n + 1));
    }
    case 5: { // a range duplicated somewhere
      if (n === 0 || n >= maxLength) return buf.slice();
      const from = rng.below(n);
      const len = Math.min(1 + rng.size(n - from - 1), maxLength - n);
      const at = rng.below(n + 1);
      return concat(buf.subarray(0, at), buf.subarray(from, from + len), buf.subarray(at));
    }
    case 6: { // random bytes inserted
      if (n >= maxLength) return buf.slice();
      const at = rng.below(n + 1);
      const len = Math.min(1 + rng.size(64), maxLength - n);
      return concat(buf.subarray(0, at), rng.bytes(len), buf.subarray(at));
    }
    case 7: { // a range deleted
      if (n === 0) return buf.slice();
      const from = rng.below(n);
      const len = 1 + rng.size(n - from - 1);
      return concat(buf.subarray(0, from), buf.subarray(from + len));
    }
    case 8: { // spliced with another input
      const donors = opts.donors ?? [];
      if (donors.length === 0) return buf.slice();
      const other = rng.pick(donors);
      const cut = rng.below(n + 1);
      const otherCut = rng.below(other.length + 1);
      const out = concat(buf.subarray(0, cut), other.subarray(otherCut));
      return out.length > maxLength ? out.slice(0, maxLength) : out;
    }
    case 9: { // a 16-bit value that means something
      if (n < 2) return buf.slice();
      const out = buf.slice();
      const at = rng.below(n - 1);
      const v = rng.pick(INTERESTING_U16);
      out[at] = v >> 8;
      out[at + 1] = v & 0xff;
      return out;
    }
    case 10: { // a range overwritten with random bytes
      if (n === 0) return buf.slice();
      const out = buf.slice();
      const from = rng.below(n);
      const len = 1 + rng.size(Math.min(16, n - from - 1));
      out.set(rng.bytes(len), from);
      return out;
    }
    default: { // a run of one byte inserted (long runs of zeros or 0xff)
      if (n >= maxLength) return buf.slice();
      const at = rng.below(n + 1);
      const len = Math.min(1 + rng.size(512), maxLength - n);
      return concat(
        buf.subarray(0, at),
        new Uint8Array(len).fill(rng.pick(BOUNDARY_BYTES)),
        buf.subarray(at),
      );
    }
  }
}

/** Applies `count` random mutations in a row. */
export function mutateBytes(
  rng: Rng,
  buf: Uint8Array,
  count: number,
  opts: MutateOptions = {},
): Uint8Array {
  let out = buf;
  for (let i = 0; i < count; i++) out = mutateOnce(rng, out, opts);
  return out === buf ? buf.slice() : out;
}

/** How many mutations to stack: often 1 or 2, sometimes many. */
export function mutationCount(rng: Rng): number {
  const r = rng.float();
  if (r < 0.45) return 1;
  if (r < 0.7) return 2;
  if (r < 0.85) return 3;
  return rng.int(4, 12);
}

/** Hex, for messages. */
export function hex(buf: Uint8Array, max = 64): string {
  let s = "";
  for (let i = 0; i < Math.min(buf.length, max); i++) s += buf[i].toString(16).padStart(2, "0");
  return buf.length > max ? `${s}… (${buf.length} bytes)` : s;
}
