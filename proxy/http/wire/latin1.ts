/**
 * Byte ⇄ string helpers for HTTP/1.1 heads, which are latin1 on the wire: every byte 0x00–0xFF
 * maps to the code point of the same value, so a header value carrying obs-text (0x80–0xFF)
 * survives a decode/encode round trip byte for byte.
 *
 * `TextDecoder("latin1")` is no use here: the Encoding Standard maps that label to
 * windows-1252, which turns 0x80–0x9F into other code points.
 *
 * @module
 */

import { Buffer } from "node:buffer";

type SliceFn = (this: Uint8Array, start: number, end: number) => string;

/*
 * Node's undocumented `Buffer.prototype.latin1Slice` decodes natively and accepts any
 * Uint8Array as `this` (Node and Deno 2.9.6 both). It costs about 40 ns whatever the length,
 * against 20–25 ns per 10 bytes for a JS loop, so it wins for anything but tiny strings. Being
 * undocumented, it is probed once here and dropped for the JS path if it is missing or wrong.
 */
const nativeSlice: SliceFn | null = probeNativeSlice();

function probeNativeSlice(): SliceFn | null {
  const candidate = (Buffer.prototype as unknown as { latin1Slice?: unknown }).latin1Slice;
  if (typeof candidate !== "function") return null;
  const fn = candidate as SliceFn;
  try {
    const probe = new Uint8Array([0x00, 0x41, 0x7f, 0x80, 0x9f, 0xa0, 0xff, 0x0d]);
    return fn.call(probe, 1, 7) === "A\x7f\x80\x9f\xa0\xff" ? fn : null;
  } catch {
    return null;
  }
}

/** Whether {@linkcode decodeLatin1} uses the native decoder (reported by the benchmark). */
export const NATIVE_LATIN1_DECODER: boolean = nativeSlice !== null;

/**
 * Decodes `buf[start..end)` as latin1: one UTF-16 code unit per byte, equal to the byte.
 *
 * @param buf the bytes
 * @param start first byte to decode (default 0)
 * @param end one past the last byte to decode (default `buf.length`)
 * @returns a string whose `charCodeAt(i)` is `buf[start + i]`
 * @throws {RangeError} when the range is not inside `buf`
 */
export function decodeLatin1(buf: Uint8Array, start = 0, end: number = buf.length): string {
  if (start < 0 || end > buf.length || start > end) {
    throw new RangeError(
      `Cannot decode bytes ${start}..${end} of a ${buf.length}-byte buffer: the range must lie inside it`,
    );
  }
  // Tiny strings (methods, "1", "gzip") are cheaper built in JS than through the native call.
  switch (end - start) {
    case 0:
      return "";
    case 1:
      return String.fromCharCode(buf[start]);
    case 2:
      return String.fromCharCode(buf[start], buf[start + 1]);
    case 3:
      return String.fromCharCode(buf[start], buf[start + 1], buf[start + 2]);
    case 4:
      return String.fromCharCode(buf[start], buf[start + 1], buf[start + 2], buf[start + 3]);
  }
  return nativeSlice !== null
    ? nativeSlice.call(buf, start, end)
    : decodeLatin1Portable(buf, start, end);
}

// Spread/apply limits differ between engines; 4096 arguments stays far below all of them.
const APPLY_CHUNK = 4096;

/**
 * The pure-JS decoder behind {@linkcode decodeLatin1}, used when the native one is unavailable.
 * Exported so tests can check both give the same strings. The range is not checked.
 */
export function decodeLatin1Portable(buf: Uint8Array, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i += APPLY_CHUNK) {
    const part = buf.subarray(i, Math.min(end, i + APPLY_CHUNK));
    out += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return out;
}

/**
 * How many bytes {@linkcode encodeLatin1Into} writes for `s`: one per UTF-16 code unit. It does
 * not scan `s`; a character above U+00FF is reported by the encoder.
 */
export function latin1Length(s: string): number {
  return s.length;
}

/**
 * Writes `s` as latin1 into `dst` at `offset`.
 *
 * @param s a string whose characters are all U+0000–U+00FF
 * @param dst the destination
 * @param offset where the first byte goes
 * @returns the offset just past the last byte written
 * @throws {RangeError} when `s` does not fit in `dst` at `offset` (nothing is written), or when
 *   a character is above U+00FF (the bytes before it have been written)
 */
export function encodeLatin1Into(s: string, dst: Uint8Array, offset: number): number {
  const n = s.length;
  if (!(offset >= 0) || offset + n > dst.length) {
    throw new RangeError(
      `Cannot encode ${n} characters at offset ${offset} of a ${dst.length}-byte buffer: make the buffer at least ${
        offset + n
      } bytes`,
    );
  }
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) {
      throw new RangeError(
        `Cannot encode character U+${
          c.toString(16).toUpperCase().padStart(4, "0")
        } at index ${i} as latin1: only U+0000–U+00FF have a one-byte form`,
      );
    }
    dst[offset + i] = c;
  }
  return offset + n;
}
