/**
 * A small DER writer (ITU-T X.690 §10), enough to build an X.509 certificate. Each function
 * returns the complete encoding (tag, length, contents) of one value.
 *
 * @module
 */

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Tag, definite length and contents. Lengths below 128 take one byte; longer ones are
 * 0x80 + the number of length bytes, then the length big-endian with no leading zero
 * (X.690 §10.1).
 */
export function tlv(tag: number, contents: Uint8Array): Uint8Array<ArrayBuffer> {
  const n = contents.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    header = [tag, 0x80 | bytes.length, ...bytes];
  }
  return concat([Uint8Array.from(header), contents]);
}

/** SEQUENCE of the given encodings, in order. */
export function sequence(items: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x30, concat(items));
}

/** SET of the given encodings. DER sorts SET OF members; callers here pass one member. */
export function set(items: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x31, concat(items));
}

/** A context-specific constructed tag `[n]` wrapping one value: EXPLICIT tagging. */
export function explicit(n: number, value: Uint8Array): Uint8Array<ArrayBuffer> {
  return tlv(0xa0 | n, value);
}

/**
 * INTEGER from unsigned big-endian magnitude bytes. DER wants the shortest two's-complement
 * form: redundant leading zero bytes are dropped (keeping one byte for zero), and a zero byte
 * is put back in front when the top bit is set, or the value would read as negative.
 */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array<ArrayBuffer> {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  const body = trimmed[0] & 0x80 ? concat([Uint8Array.of(0), trimmed]) : trimmed;
  return tlv(0x02, body);
}

/** INTEGER for a small non-negative number. */
export function smallInteger(value: number): Uint8Array<ArrayBuffer> {
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Uint8Array.from(bytes.length === 0 ? [0] : bytes));
}

/** BOOLEAN; DER writes TRUE as 0xff. */
export function boolean(value: boolean): Uint8Array<ArrayBuffer> {
  return tlv(0x01, Uint8Array.of(value ? 0xff : 0x00));
}

/** OCTET STRING. */
export function octetString(contents: Uint8Array): Uint8Array<ArrayBuffer> {
  return tlv(0x04, contents);
}

/** BIT STRING: the count of unused bits in the last byte, then the bytes. */
export function bitString(contents: Uint8Array, unusedBits = 0): Uint8Array<ArrayBuffer> {
  return tlv(0x03, concat([Uint8Array.of(unusedBits), contents]));
}

/** OBJECT IDENTIFIER from dotted form, e.g. `2.5.4.3`. */
export function oid(dotted: string): Uint8Array<ArrayBuffer> {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) {
    throw new TypeError(`"${dotted}" is not an object identifier`);
  }
  // The first two arcs share one subidentifier (X.690 §8.19.4).
  const subids = [arcs[0] * 40 + arcs[1], ...arcs.slice(2)];
  const out: number[] = [];
  for (const id of subids) {
    // Base 128, most significant group first, the high bit set on all but the last.
    const groups: number[] = [id & 0x7f];
    for (let v = Math.floor(id / 128); v > 0; v = Math.floor(v / 128)) {
      groups.unshift((v & 0x7f) | 0x80);
    }
    out.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** UTF8String. */
export function utf8String(text: string): Uint8Array<ArrayBuffer> {
  return tlv(0x0c, new TextEncoder().encode(text));
}

/**
 * A certificate validity time (RFC 5280 §4.1.2.5): UTCTime `YYMMDDHHMMSSZ` for years 1950 to
 * 2049, GeneralizedTime `YYYYMMDDHHMMSSZ` from 2050 on. Seconds are always present and
 * fractions never, as the RFC requires.
 */
export function time(date: Date): Uint8Array<ArrayBuffer> {
  const year = date.getUTCFullYear();
  const two = (n: number) => String(n).padStart(2, "0");
  const rest = two(date.getUTCMonth() + 1) + two(date.getUTCDate()) + two(date.getUTCHours()) +
    two(date.getUTCMinutes()) + two(date.getUTCSeconds()) + "Z";
  if (year < 1950 || year > 9999) throw new RangeError(`year ${year} cannot be encoded`);
  const encoder = new TextEncoder();
  return year < 2050
    ? tlv(0x17, encoder.encode(two(year % 100) + rest))
    : tlv(0x18, encoder.encode(String(year) + rest));
}
