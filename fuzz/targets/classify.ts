/**
 * Target `classify`: `classify(buf, maxHelloSize)` from proxy/sniff/classify.ts, fed a buffer that
 * grows byte by byte, as a sniffer sees it.
 *
 * Checked for every input: each prefix gives a known verdict without throwing; `incomplete`
 * only where more bytes could still change the answer (below the hello byte cap for TLS, below
 * the longest method for the rest); and once a prefix gets a final verdict, every longer prefix
 * gets the same one (the same kind; for TLS the same hello, for a malformed hello the same
 * reason).
 *
 * @module
 */

import { type Classification, classify } from "../../proxy/sniff/classify.ts";
import { buildClientHello, concat } from "../../proxy/_testing/hello_builder.ts";
import { maxHelloWireBytes } from "../../proxy/sniff/client_hello.ts";
import { check, type FuzzCase, type FuzzTarget, type ScalingFamily } from "../harness.ts";
import { mutateBytes } from "../mutate.ts";
import type { Rng } from "../rng.ts";
import { capturedHellos, decodeHelloInput, encodeHelloInput, generateHello } from "./_hello.ts";

const KINDS = new Set(["incomplete", "tls", "tls-malformed", "http", "ssh", "unknown"]);
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
/** "OPTIONS " and "CONNECT " are the longest prefixes classify waits for outside TLS. */
const LONGEST_METHOD = 8;

const enc = new TextEncoder();

/** A verdict with everything that must stay fixed once it is final. */
function fingerprint(c: Classification): string {
  return JSON.stringify(c);
}

/** The prefix lengths to classify: all of the first 96, then about 48 spread over the rest. */
function cutPoints(rng: Rng, n: number): number[] {
  const cuts: number[] = [];
  for (let i = 0; i <= Math.min(n, 96); i++) cuts.push(i);
  if (n > 96) {
    const extra = new Set<number>([n]);
    for (let i = 0; i < 48; i++) extra.add(rng.int(97, n));
    cuts.push(...[...extra].sort((a, b) => a - b));
  }
  return cuts;
}

/** Classifies each prefix of `buf` whose length is in `cuts`. */
export function grow(buf: Uint8Array, maxSize: number, cuts: number[]): Classification[] {
  return cuts.map((len) => classify(buf.subarray(0, len), maxSize));
}

/** Checks the verdicts of one buffer's growth; returns the last verdict's kind. */
export function checkGrowth(
  buf: Uint8Array,
  maxSize: number,
  cuts: number[],
  verdicts: Classification[],
): string {
  let final: Classification | null = null;
  let finalAt = -1;
  const wire = maxHelloWireBytes(maxSize);
  let last = "incomplete";
  for (const [i, len] of cuts.entries()) {
    const c = verdicts[i];
    check(
      typeof c === "object" && c !== null && KINDS.has(c.kind),
      () => `bad verdict ${JSON.stringify(c)} at ${len} bytes`,
    );
    last = c.kind;
    if (c.kind === "incomplete") {
      check(final === null, () => `incomplete at ${len} bytes after ${final?.kind} at ${finalAt}`);
      const tlsLike = buf[0] === 0x16 || buf[0] >= 0x80;
      const bound = tlsLike ? wire : LONGEST_METHOD;
      check(len < bound, () => `incomplete at ${len} bytes (first byte ${buf[0]}, bound ${bound})`);
      continue;
    }
    if (final === null) {
      final = c;
      finalAt = len;
      if (c.kind === "tls") {
        check(c.hello.end <= len, () => `tls verdict with end ${c.hello.end} past ${len}`);
      }
      continue;
    }
    check(
      fingerprint(c) === fingerprint(final),
      () =>
        `verdict changed: ${fingerprint(final!)} at ${finalAt} bytes, ${fingerprint(c)} at ${len}`,
    );
  }
  return last;
}

/** The first bytes of a connection: TLS, HTTP, SSH, SSLv2-looking, or anything. */
function generateStream(rng: Rng): { bytes: Uint8Array; maxSize: number } {
  const r = rng.float();
  if (r < 0.35) return generateHello(rng);
  const maxSize = rng.chance(0.9) ? 16384 : rng.pick([512, 1024, 65536]);
  let bytes: Uint8Array;
  if (r < 0.6) {
    const method = rng.chance(0.9) ? rng.pick(METHODS) : "PRI";
    const line = rng.chance(0.8)
      ? `${method} /${"x".repeat(rng.size(40))} HTTP/1.1\r\nHost: a.test\r\n\r\n`
      : method.slice(0, rng.int(0, method.length)) + rng.pick([" ", "", "X", "\r\n", "  "]);
    bytes = enc.encode(line);
  } else if (r < 0.75) {
    bytes = enc.encode(rng.pick(["SSH-2.0-OpenSSH_9.2p1\r\n", "SSH-", "SS", "SSH_", "S"]));
  } else if (r < 0.8) {
    // SSLv2-style: a two-byte length with the high bit set, then msg_type.
    bytes = concat(Uint8Array.of(0x80 | rng.below(128), rng.below(256), rng.pick([1, 2])));
  } else {
    bytes = rng.bytes(rng.size(512));
  }
  if (rng.chance(0.5)) bytes = concat(bytes, rng.bytes(rng.size(256)));
  if (rng.chance(0.5)) bytes = mutateBytes(rng, bytes, rng.int(1, 3), { maxLength: 70000 });
  return { bytes, maxSize };
}

function classifyCase(input: { bytes: Uint8Array; maxSize: number }, cuts: number[]): FuzzCase {
  return {
    run() {
      const verdicts = grow(input.bytes, input.maxSize, cuts);
      return () => checkGrowth(input.bytes, input.maxSize, cuts, verdicts);
    },
    bytes: () => encodeHelloInput(input),
  };
}

function allCuts(n: number): number[] {
  return Array.from({ length: n + 1 }, (_, i) => i);
}

const SCALING: ScalingFamily[] = [
  {
    name: "padded hello, whole",
    make(_rng, size) {
      const bytes = buildClientHello({ padTo: Math.min(size, 16384) });
      return { bytes: bytes.length, run: () => void classify(bytes, 65536) };
    },
  },
  {
    name: "garbage after an HTTP method",
    make(rng, size) {
      const bytes = concat(enc.encode("OPTIONS "), rng.bytes(size));
      return { bytes: bytes.length, run: () => void classify(bytes, 16384) };
    },
  },
];

/** The `classify` target. */
export const classifyTarget: FuzzTarget = {
  name: "classify",
  summary: "classify(buf, maxHelloSize) on a buffer growing byte by byte: known verdicts, " +
    "incomplete only while undecidable, a final verdict never changes",
  share: 0.15,
  maxMs: 20,
  setup() {
    capturedHellos();
  },
  generate(rng) {
    const input = generateStream(rng);
    return classifyCase(input, cutPoints(rng, input.bytes.length));
  },
  replay(file) {
    const input = decodeHelloInput(file);
    return classifyCase(input, allCuts(input.bytes.length));
  },
  scaling: SCALING,
};
