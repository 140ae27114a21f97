import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeLatin1,
  decodeLatin1Portable,
  encodeLatin1Into,
  latin1Length,
  NATIVE_LATIN1_DECODER,
} from "./latin1.ts";

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

Deno.test("decodeLatin1() maps every byte 0x00–0xFF to the code point of the same value", () => {
  const s = decodeLatin1(ALL_BYTES);
  assert.equal(s.length, 256);
  for (let i = 0; i < 256; i++) assert.equal(s.charCodeAt(i), i);
});

Deno.test("decodeLatin1() keeps 0x80–0x9F, which windows-1252 decoders would remap", () => {
  assert.equal(decodeLatin1(new Uint8Array([0x80, 0x9f, 0x85])), "\x80\x9f\x85");
});

Deno.test("decodeLatin1() decodes only the requested range, for short and long ranges", () => {
  for (let len = 0; len <= 12; len++) {
    assert.equal(
      decodeLatin1(ALL_BYTES, 100, 100 + len),
      decodeLatin1Portable(ALL_BYTES, 100, 100 + len),
    );
    assert.equal(decodeLatin1(ALL_BYTES, 100, 100 + len).length, len);
  }
  assert.equal(decodeLatin1(ALL_BYTES, 0x41, 0x45), "ABCD");
});

Deno.test("decodeLatin1() uses the native decoder on this Deno", () => {
  assert.equal(NATIVE_LATIN1_DECODER, true);
});

Deno.test("decodeLatin1() rejects a range outside the buffer", () => {
  assert.throws(() => decodeLatin1(ALL_BYTES, 10, 257), RangeError);
  assert.throws(() => decodeLatin1(ALL_BYTES, -1, 5), RangeError);
  assert.throws(() => decodeLatin1(ALL_BYTES, 6, 5), RangeError);
});

Deno.test("decodeLatin1Portable() handles ranges longer than one apply() chunk", () => {
  const big = Uint8Array.from({ length: 10000 }, (_, i) => (i * 7) & 0xff);
  const s = decodeLatin1Portable(big, 3, 9999);
  assert.equal(s.length, 9996);
  for (let i = 0; i < s.length; i++) assert.equal(s.charCodeAt(i), big[i + 3]);
  assert.equal(decodeLatin1(big, 3, 9999), s);
});

Deno.test("decodeLatin1() and decodeLatin1Portable() agree on random bytes and ranges", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(),
      fc.nat(),
      (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
        assert.equal(decodeLatin1(bytes, start, end), decodeLatin1Portable(bytes, start, end));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("encodeLatin1Into() writes one byte per character and returns the next offset", () => {
  const dst = new Uint8Array(10);
  assert.equal(encodeLatin1Into("Hé\xff", dst, 2), 5);
  assert.deepEqual([...dst], [0, 0, 0x48, 0xe9, 0xff, 0, 0, 0, 0, 0]);
  assert.equal(encodeLatin1Into("", dst, 10), 10);
});

Deno.test("encodeLatin1Into() round-trips with decodeLatin1() for every byte", () => {
  const s = decodeLatin1(ALL_BYTES);
  const dst = new Uint8Array(latin1Length(s));
  assert.equal(encodeLatin1Into(s, dst, 0), 256);
  assert.deepEqual(dst, ALL_BYTES);
});

Deno.test("encodeLatin1Into() rejects a character above U+00FF", () => {
  assert.throws(() => encodeLatin1Into("a€", new Uint8Array(4), 0), /U\+20AC at index 1/);
});

Deno.test("encodeLatin1Into() rejects a string that does not fit and writes nothing", () => {
  const dst = new Uint8Array(4);
  assert.throws(() => encodeLatin1Into("abc", dst, 2), RangeError);
  assert.throws(() => encodeLatin1Into("a", dst, -1), RangeError);
  assert.deepEqual([...dst], [0, 0, 0, 0]);
});

Deno.test("latin1Length() is the number of bytes encodeLatin1Into() writes", () => {
  for (const s of ["", "GET", "caf\xe9", "x".repeat(1000)]) {
    assert.equal(encodeLatin1Into(s, new Uint8Array(latin1Length(s)), 0), latin1Length(s));
  }
});
