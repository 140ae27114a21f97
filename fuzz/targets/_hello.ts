/**
 * ClientHello inputs for the `client_hello` and `classify` targets: captured hellos and
 * builder-made ones, re-fragmented and mutated, with the length fields of each found by a walk
 * of our own (independent of proxy/sniff/client_hello.ts) so mutations can aim at them.
 *
 * @module
 */

import {
  alpnData,
  buildClientHello,
  concat,
  type HelloOptions,
  replaceExtension,
  splitRecords,
} from "../../proxy/_testing/hello_builder.ts";
import { MAX_HELLO_SIZE } from "../../proxy/sniff/client_hello.ts";
import { type LengthField, mutateBytes, mutationCount } from "../mutate.ts";
import type { Rng } from "../rng.ts";

const HELLOS = new URL("../../testdata/hellos/", import.meta.url);

/** The captured hellos in testdata/hellos, read once. */
let captured: Uint8Array[] | null = null;

export function capturedHellos(): Uint8Array[] {
  if (captured === null) {
    captured = [];
    for (const entry of Deno.readDirSync(HELLOS)) {
      if (entry.isFile && entry.name.endsWith(".bin")) {
        captured.push(Deno.readFileSync(new URL(entry.name, HELLOS)));
      }
    }
    if (captured.length === 0) throw new Error(`no *.bin hellos in ${HELLOS}`);
  }
  return captured;
}

/** What an unmutated builder hello must parse to; null when not predicted. */
export interface HelloExpectation {
  sni: string | null;
  alpn: string[];
  ech: boolean;
}

/** One generated hello input. */
export interface HelloInput {
  bytes: Uint8Array;
  maxSize: number;
  expect: HelloExpectation | null;
}

const LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_";
const ODD_CHARS = "ABCXYZ.*/ \x00\x7f\xff\xe9:@%";

function label(rng: Rng, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) {
    const c = rng.pick(LABEL_CHARS);
    s += rng.chance(0.1) ? c.toUpperCase() : c;
  }
  return s;
}

/** A server name: usually valid, sometimes odd, sometimes near the 253-byte limit. */
function randomSni(rng: Rng): string {
  const r = rng.float();
  if (r < 0.1) {
    // Around the limit: 250–260 bytes.
    const target = rng.int(248, 262);
    let s = "";
    while (s.length < target) s += (s ? "." : "") + label(rng, rng.int(1, 40));
    return s.slice(0, target).replace(/\.$/, "x");
  }
  const labels: string[] = [];
  const count = rng.int(1, 5);
  for (let i = 0; i < count; i++) labels.push(label(rng, rng.int(1, 12)));
  let s = labels.join(".");
  if (rng.chance(0.15)) s += ".";
  if (rng.chance(0.1)) {
    // An odd character, an empty label, or nothing at all.
    const at = rng.below(s.length + 1);
    s = s.slice(0, at) + rng.pick(ODD_CHARS) + s.slice(at);
  }
  if (rng.chance(0.02)) s = rng.pick(["", ".", "..", "a..b"]);
  return s;
}

/** The name the parser must report for `sni`, or "invalid" when it must refuse it. */
function expectedSni(sni: string): string | "invalid" {
  let name = sni.endsWith(".") ? sni.slice(0, -1) : sni;
  if (name.length === 0 || name.length > 253) return "invalid";
  name = name.toLowerCase();
  for (const l of name.split(".")) {
    if (l.length === 0) return "invalid";
    for (const c of l) if (!LABEL_CHARS.includes(c)) return "invalid";
  }
  return name;
}

const ALPN_POOL = ["h2", "http/1.1", "acme-tls/1", "h3", "spdy/3", "x"];

/** Extension types that never collide with the builder's own (0, 10, 13, 16, 21, 43, 51). */
const SAFE_EXTRA_TYPES = [5, 11, 17, 23, 35, 45, 65281, 0x0a0a, 0xfafa, 0x4469, 0xfe0d];

/** A builder hello with random options, and what it must parse to when left unmutated. */
export function builtHello(rng: Rng): { bytes: Uint8Array; expect: HelloExpectation | null } {
  const opts: HelloOptions = {};
  let predictable = true;
  let sniExpect: string | null = null;
  if (rng.chance(0.1)) {
    opts.sni = null;
  } else {
    opts.sni = randomSni(rng);
    const e = expectedSni(opts.sni);
    if (e === "invalid") predictable = false;
    else sniExpect = e;
  }
  const alpn: string[] = [];
  if (rng.chance(0.6)) {
    const n = rng.int(1, 4);
    for (let i = 0; i < n; i++) {
      alpn.push(rng.chance(0.9) ? rng.pick(ALPN_POOL) : label(rng, rng.int(1, 300)));
    }
    opts.alpn = alpn;
    if (alpn.some((a) => a.length > 255)) predictable = false;
  }
  if (rng.chance(0.3)) opts.padTo = rng.chance(0.5) ? rng.int(0, 2100) : rng.int(0, 17000);
  if (rng.chance(0.2)) opts.keyShareBytes = rng.chance(0.7) ? rng.int(0, 1300) : rng.int(0, 9000);
  let ech = false;
  if (rng.chance(0.3)) {
    const extras: { type: number; data: Uint8Array }[] = [];
    const n = rng.int(1, 6);
    const used = new Set<number>();
    for (let i = 0; i < n; i++) {
      const type = rng.chance(0.05) ? rng.pick([0, 10, 16, 43, 51]) : rng.pick(SAFE_EXTRA_TYPES);
      if (used.has(type) || !SAFE_EXTRA_TYPES.includes(type)) predictable = false;
      used.add(type);
      if (type === 0xfe0d) ech = true;
      extras.push({ type, data: rng.bytes(rng.size(300)) });
    }
    opts.extraExtensions = extras;
  }
  if (rng.chance(0.05)) opts.recordVersion = rng.pick([0x0300, 0x0303, 0x0304, 0x0200, 0xffff]);
  const bytes = buildClientHello(opts);
  if (opts.recordVersion !== undefined && (opts.recordVersion >> 8) !== 3) predictable = false;
  return { bytes, expect: predictable ? { sni: sniExpect, alpn, ech } : null };
}

/** Fragment sizes for splitRecords: tiny, typical (512) or random, sometimes with a 0. */
function randomSplit(rng: Rng, length: number): number[] {
  const style = rng.below(4);
  const sizes: number[] = [];
  let left = length;
  while (left > 0 && sizes.length < 300) {
    let s: number;
    if (style === 0) s = rng.int(1, 8);
    else if (style === 1) s = 512;
    else if (style === 2) s = rng.int(1, Math.max(1, left));
    else s = 1 + rng.size(4096);
    if (rng.chance(0.01)) s = 0;
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

/** The message bytes of a hello and where each lies in the records, as far as they are whole. */
function gather(buf: Uint8Array): { msg: number[]; fields: LengthField[] } {
  const msg: number[] = []; // wire offset of each message byte
  const fields: LengthField[] = [];
  let off = 0;
  while (off + 5 <= buf.length && buf[off] === 22) {
    const len = (buf[off + 3] << 8) | buf[off + 4];
    fields.push({ at: [off + 3, off + 4], container: buf.length - off - 5 });
    const end = Math.min(buf.length, off + 5 + len);
    for (let i = off + 5; i < end; i++) msg.push(i);
    off += 5 + len;
  }
  return { msg, fields };
}

/**
 * Every length field of a hello that a tolerant walk can find: record lengths, the handshake
 * length, and the vectors of the ClientHello and of its server_name, ALPN, supported_versions
 * and key_share extensions.
 */
export function helloLengthFields(buf: Uint8Array): LengthField[] {
  const { msg, fields } = gather(buf);
  const n = msg.length;
  const at = (p: number, w: number) => msg.slice(p, p + w);
  const get = (p: number, w: number) => {
    let v = 0;
    for (let i = 0; i < w; i++) v = v * 256 + buf[msg[p + i]];
    return v;
  };
  const field = (p: number, w: number, end: number): number | null => {
    if (p + w > n || p + w > end) return null;
    fields.push({ at: at(p, w), container: end - p - w });
    return get(p, w);
  };
  if (field(1, 3, n) === null) return fields;
  let p = 4 + 2 + 32;
  const sid = field(p, 1, n);
  if (sid === null) return fields;
  p += 1 + sid;
  const suites = field(p, 2, n);
  if (suites === null) return fields;
  p += 2 + suites;
  const comp = field(p, 1, n);
  if (comp === null) return fields;
  p += 1 + comp;
  const exts = field(p, 2, n);
  if (exts === null) return fields;
  p += 2;
  const extsEnd = Math.min(n, p + exts);
  while (p + 4 <= extsEnd) {
    const type = get(p, 2);
    const len = field(p + 2, 2, extsEnd);
    if (len === null) break;
    const data = p + 4;
    const dataEnd = Math.min(extsEnd, data + len);
    if (type === 0 || type === 16 || type === 51) {
      const list = field(data, 2, dataEnd);
      if (list !== null) {
        let q = data + 2;
        const listEnd = Math.min(dataEnd, q + list);
        while (q < listEnd) {
          // server_name: type(1) len(2); ALPN: len(1); key_share: group(2) len(2).
          const w = type === 16 ? 1 : 2;
          const lenAt = type === 16 ? q : type === 0 ? q + 1 : q + 2;
          const v = field(lenAt, w, listEnd);
          if (v === null) break;
          q = lenAt + w + v;
        }
      }
    } else if (type === 43) {
      field(data, 1, dataEnd);
    }
    p = data + len;
  }
  return fields;
}

/** The seeds and donors the hello generators draw from (built once per process). */
let donorPool: Uint8Array[] | null = null;

function donors(rng: Rng): Uint8Array[] {
  if (donorPool === null) {
    donorPool = [...capturedHellos()];
    for (let i = 0; i < 8; i++) donorPool.push(builtHello(rng).bytes);
  }
  return donorPool;
}

/** The cap the parser is called with: the default mostly, the config's extremes sometimes. */
function randomMaxSize(rng: Rng): number {
  if (rng.chance(0.8)) return MAX_HELLO_SIZE;
  return rng.pick([512, 1024, 2048, 4096, 65536, rng.int(512, 65536)]);
}

/** A hello, maybe re-fragmented, maybe mutated, maybe not a hello at all. */
export function generateHello(rng: Rng): HelloInput {
  const maxSize = randomMaxSize(rng);
  const pool = donors(rng);
  const r = rng.float();
  if (r < 0.04) {
    const bytes = rng.bytes(rng.size(4096));
    if (bytes.length > 0 && rng.chance(0.5)) bytes[0] = 0x16;
    return { bytes, maxSize, expect: null };
  }
  let bytes: Uint8Array;
  let expect: HelloExpectation | null = null;
  if (r < 0.3) {
    bytes = rng.pick(capturedHellos());
  } else {
    ({ bytes, expect } = builtHello(rng));
  }
  if (rng.chance(0.4)) {
    const sizes = randomSplit(rng, bytes.length);
    bytes = splitRecords(bytes, sizes);
    if (sizes.includes(0)) expect = null;
  }
  if (rng.chance(0.05)) {
    // An extension vector rewritten by hand: several host_names, empty ALPN names, and so on.
    bytes = replaceExtension(bytes, rng.pick([0, 16, 43]), oddExtensionData(rng));
    expect = null;
  }
  if (rng.chance(0.85)) {
    bytes = mutateBytes(rng, bytes, mutationCount(rng), {
      lengthFields: helloLengthFields,
      donors: pool,
      maxLength: 70000,
    });
    expect = null;
  }
  return { bytes, maxSize, expect };
}

function oddExtensionData(rng: Rng): Uint8Array {
  switch (rng.below(4)) {
    case 0: { // server_name with several entries of mixed types
      const entries: Uint8Array[] = [];
      const n = rng.int(0, 4);
      for (let i = 0; i < n; i++) {
        const name = new TextEncoder().encode(randomSni(rng));
        entries.push(
          Uint8Array.of(rng.chance(0.7) ? 0 : rng.int(1, 255), name.length >> 8, name.length),
          name,
        );
      }
      const list = concat(...entries);
      return concat(Uint8Array.of(list.length >> 8, list.length), list);
    }
    case 1:
      return alpnData(rng.chance(0.5) ? ["", "h2"] : ["h2", "h2", "x".repeat(rng.int(0, 255))]);
    case 2: { // supported_versions of odd lengths
      const len = rng.int(0, 9);
      return concat(Uint8Array.of(rng.chance(0.5) ? len : rng.int(0, 255)), rng.bytes(len));
    }
    default:
      return rng.bytes(rng.size(64));
  }
}

/** Encodes a hello input for a crash file: the max size (4 bytes, big-endian), then the bytes. */
export function encodeHelloInput(input: { bytes: Uint8Array; maxSize: number }): Uint8Array {
  const out = new Uint8Array(4 + input.bytes.length);
  new DataView(out.buffer).setUint32(0, input.maxSize);
  out.set(input.bytes, 4);
  return out;
}

/** Reads {@linkcode encodeHelloInput}'s format back. */
export function decodeHelloInput(file: Uint8Array): { bytes: Uint8Array; maxSize: number } {
  if (file.length < 4) throw new Error("a hello crash file starts with a 4-byte max size");
  const maxSize = new DataView(file.buffer, file.byteOffset).getUint32(0);
  return { bytes: file.slice(4), maxSize };
}
