/**
 * Target `client_hello`: `parseClientHello(buf, maxSize)` from proxy/sniff/client_hello.ts.
 *
 * Checked for every input: one of the four kinds comes back and nothing is thrown; `incomplete`
 * only below the documented byte cap; a `hello` has a normalised name, non-empty ALPN names and
 * an `end` inside the buffer, parses the same from `buf[0, end)`, and every proper prefix of it
 * (all of them for one input in 32, three otherwise) is `incomplete`. Unmutated builder hellos
 * must give exactly the name and ALPN list they were built with.
 *
 * @module
 */

import {
  type ClientHelloResult,
  maxHelloWireBytes,
  parseClientHello,
} from "../../proxy/sniff/client_hello.ts";
import {
  alpnData,
  buildClientHello,
  concat,
  replaceExtension,
  splitRecords,
} from "../../proxy/_testing/hello_builder.ts";
import { check, type FuzzCase, type FuzzTarget, type ScalingFamily } from "../harness.ts";
import type { Rng } from "../rng.ts";
import {
  capturedHellos,
  decodeHelloInput,
  encodeHelloInput,
  generateHello,
  type HelloExpectation,
  type HelloInput,
} from "./_hello.ts";

const KINDS = new Set(["incomplete", "not-tls", "malformed", "hello"]);
const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

function describe(r: ClientHelloResult): string {
  return JSON.stringify(r);
}

/** The checks every result must pass; `all` walks every proper prefix of a hello. */
export function checkHelloResult(
  buf: Uint8Array,
  maxSize: number,
  r: ClientHelloResult,
  all: boolean,
): void {
  check(typeof r === "object" && r !== null && KINDS.has(r.kind), () => `bad kind ${describe(r)}`);
  const n = buf.length;
  switch (r.kind) {
    case "incomplete":
      check(
        n < maxHelloWireBytes(maxSize),
        `incomplete for ${n} bytes, at or above maxHelloWireBytes(${maxSize})`,
      );
      check(n === 0 || buf[0] === 0x16 || (buf[0] & 0x80) !== 0, "incomplete for a non-TLS byte");
      return;
    case "not-tls":
      check(n > 0 && buf[0] !== 0x16, "not-tls for a buffer that starts a handshake record");
      return;
    case "malformed":
      check(typeof r.reason === "string" && r.reason.length > 0, "malformed without a reason");
      return;
    case "hello": {
      const h = r.hello;
      check(buf[0] === 0x16, "a hello from a buffer that does not start with 0x16");
      check(
        Number.isInteger(h.end) && h.end > 5 && h.end <= n,
        () => `hello end ${h.end} outside 6..${n}`,
      );
      // Each record takes a 5-byte header and at least one byte.
      check(
        Number.isInteger(h.records) && h.records >= 1 && h.records * 6 <= h.end,
        () => `${h.records} records in ${h.end} bytes`,
      );
      check(h.sni === null || (h.sni.length <= 253 && NAME.test(h.sni)), () => `sni ${h.sni}`);
      check(
        Array.isArray(h.alpn) &&
          h.alpn.every((a) => typeof a === "string" && a.length >= 1 && a.length <= 255),
        () => `alpn ${JSON.stringify(h.alpn)}`,
      );
      check(
        h.legacyVersion >= 0 && h.legacyVersion <= 0xffff && typeof h.tls13 === "boolean" &&
          typeof h.ech === "boolean",
        "hello fields",
      );
      const again = parseClientHello(buf.subarray(0, h.end), maxSize);
      check(
        describe(again) === describe(r),
        () => `buf[0, end) parses as ${describe(again)}, the whole buffer as ${describe(r)}`,
      );
      const prefixes: number[] = [];
      if (all) { for (let i = 0; i < h.end; i++) prefixes.push(i); }
      else prefixes.push(0, h.end - 1, Math.floor(h.end / 2));
      for (const len of prefixes) {
        const p = parseClientHello(buf.subarray(0, len), maxSize);
        check(
          p.kind === "incomplete",
          () => `the ${len}-byte prefix of a ${h.end}-byte hello gives ${describe(p)}`,
        );
      }
      return;
    }
  }
}

/** Whether an unmutated hello fits the parser's limits, by a walk of our own. */
function fitsLimits(buf: Uint8Array, maxSize: number): boolean {
  let off = 0;
  const first: number[] = [];
  while (off < buf.length) {
    const len = (buf[off + 3] << 8) | buf[off + 4];
    if (len === 0 || len > 16384) return false;
    for (let i = off + 5; i < off + 5 + len && first.length < 4; i++) first.push(buf[i]);
    off += 5 + len;
  }
  const hsLen = (first[1] << 16) | (first[2] << 8) | first[3];
  return hsLen <= maxSize && buf.length <= maxHelloWireBytes(maxSize);
}

function checkExpectation(input: HelloInput, r: ClientHelloResult, e: HelloExpectation): void {
  if (!fitsLimits(input.bytes, input.maxSize)) {
    check(r.kind === "malformed", () => `an oversized hello gives ${describe(r)}`);
    return;
  }
  check(r.kind === "hello", () => `a well-formed hello gives ${describe(r)}`);
  check(r.hello.sni === e.sni, () => `sni ${r.hello.sni}, built with ${e.sni}`);
  check(
    JSON.stringify(r.hello.alpn) === JSON.stringify(e.alpn),
    () => `alpn ${JSON.stringify(r.hello.alpn)}, built with ${JSON.stringify(e.alpn)}`,
  );
  check(r.hello.ech === e.ech, "ech flag");
  check(r.hello.end === input.bytes.length, "end of an exact hello");
}

function helloCase(input: HelloInput, all: boolean): FuzzCase {
  return {
    run() {
      const r = parseClientHello(input.bytes, input.maxSize);
      return () => {
        checkHelloResult(input.bytes, input.maxSize, r, all);
        if (input.expect !== null) checkExpectation(input, r, input.expect);
        return r.kind;
      };
    },
    bytes: () => encodeHelloInput(input),
  };
}

function scalingHello(make: (rng: Rng, size: number) => Uint8Array): ScalingFamily["make"] {
  return (rng, size) => {
    const bytes = make(rng, size);
    return {
      bytes: bytes.length,
      run() {
        parseClientHello(bytes, 65536);
      },
    };
  };
}

const SCALING: ScalingFamily[] = [
  {
    name: "padded hello",
    make: scalingHello((_rng, size) => buildClientHello({ padTo: Math.min(size, 16384) })),
  },
  {
    name: "thousands of empty extensions",
    make: scalingHello((_rng, size) => {
      const extraExtensions = [];
      for (let i = 0; i < (Math.min(size, 16000) - 200) / 4; i++) {
        extraExtensions.push({ type: 1000 + i, data: new Uint8Array(0) });
      }
      return buildClientHello({ extraExtensions });
    }),
  },
  {
    name: "one-byte ALPN names",
    make: scalingHello((_rng, size) => {
      const names = Array.from(
        { length: (Math.min(size, 16000) - 200) / 2 },
        (_, i) => String.fromCharCode(0x61 + (i % 26)),
      );
      return replaceExtension(buildClientHello(), 16, alpnData(names));
    }),
  },
  {
    name: "server_name entries of unknown type",
    make: scalingHello((_rng, size) => {
      const entries = new Uint8Array(Math.floor((Math.min(size, 16000) - 200) / 3) * 3);
      for (let i = 0; i < entries.length; i += 3) entries[i] = 7;
      const list = concat(entries, Uint8Array.of(0, 0, 1, 0x61));
      const data = concat(Uint8Array.of(list.length >> 8, list.length), list);
      return replaceExtension(buildClientHello(), 0, data);
    }),
  },
  {
    name: "hello cut into 200 records",
    make: scalingHello((_rng, size) => {
      const hello = buildClientHello({ padTo: Math.min(size, 16384) - 1000 });
      const frag = Math.ceil((hello.length - 5) / 200);
      return splitRecords(hello, new Array(200).fill(frag));
    }),
  },
];

/** The `client_hello` target. */
export const clientHelloTarget: FuzzTarget = {
  name: "client_hello",
  summary: "parseClientHello(buf, maxSize): four kinds, never a throw; hello invariants, " +
    "prefixes incomplete, byte cap honoured, unmutated builder hellos exact",
  share: 0.33,
  maxMs: 20,
  setup() {
    capturedHellos();
  },
  generate(rng) {
    return helloCase(generateHello(rng), rng.chance(1 / 32));
  },
  replay(file) {
    return helloCase({ ...decodeHelloInput(file), expect: null }, true);
  },
  scaling: SCALING,
};
