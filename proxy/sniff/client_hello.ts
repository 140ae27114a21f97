/**
 * A pure parser for the TLS ClientHello: bytes in, a tagged union out.
 *
 * It reads only what routing needs (server name, ALPN, whether TLS 1.3 and ECH are offered)
 * and checks every length against its container, so a sniffer can call it after each read
 * until it stops answering `incomplete`.
 *
 * @module
 */

import { domainToASCII } from "node:url";

/** What {@linkcode parseClientHello} made of the bytes it was given. */
export type ClientHelloResult =
  /** More bytes are needed; not an error. */
  | { kind: "incomplete" }
  /** The first byte does not start a TLS handshake record (nor an SSLv2-style hello). */
  | { kind: "not-tls" }
  /** TLS, but broken or over the cap; `reason` is a short lowercase phrase for logs. */
  | { kind: "malformed"; reason: string }
  | { kind: "hello"; hello: ClientHelloInfo };

/** The parts of a ClientHello that routing looks at. */
export interface ClientHelloInfo {
  /**
   * Lowercased, one trailing dot removed; null when the client sent no server_name. A name
   * sent as raw UTF-8 is given in its A-label form (`xn--bcher-kva.example.test`).
   */
  sni: string | null;
  /**
   * The client sent the server name as raw UTF-8 (U-labels, `bücher.example.test`) instead of
   * the A-labels RFC 6066 §3 asks for; `sni` holds the A-label form it was converted to.
   */
  idn: boolean;
  /** Protocols offered, in client order; [] when there is no ALPN extension. */
  alpn: string[];
  /**
   * Offset just past the last TLS record that carried part of the hello. Bytes after it
   * (0-RTT early data, for instance) are not part of the hello.
   */
  end: number;
  /** How many TLS records carried the hello. */
  records: number;
  /** ClientHello.legacy_version. */
  legacyVersion: number;
  /** supported_versions lists TLS 1.3 (0x0304). */
  tls13: boolean;
  /** An encrypted_client_hello (0xfe0d) extension is present, GREASE or real. */
  ech: boolean;
}

/** The default cap on the ClientHello handshake message length (its 24-bit length field). */
export const MAX_HELLO_SIZE = 16384;

/*
 * Wire grammar (RFC 8446 §5.1, §4.1.2, §4.2; RFC 6066 §3; RFC 7301 §3.1). Lengths are
 * big-endian; <a..b> is a vector whose length prefix is as wide as b needs.
 *
 *   TLSPlaintext      = type(1) = 22 | legacy_record_version(2), major 3
 *                       | length(2), 1..2^14 | fragment[length]
 *   The fragments of consecutive handshake records are concatenated into:
 *   Handshake         = msg_type(1) = 1 | length(3) | ClientHello[length]
 *   ClientHello       = legacy_version(2) | random(32)
 *                       | legacy_session_id<0..32>
 *                       | cipher_suites<2..2^16-2>             (uint16 each, so even)
 *                       | legacy_compression_methods<1..2^8-1>
 *                       | [ extensions<0..2^16-1> ]            (absent in TLS 1.0-style hellos;
 *                                                               must fill the rest exactly)
 *   Extension         = extension_type(2) | extension_data<0..2^16-1>
 *   server_name (0)   = server_name_list<1..2^16-1> of
 *                         name_type(1) | HostName<1..2^16-1>  (name_type 0 = host_name)
 *   ALPN (16)         = protocol_name_list<2..2^16-1> of ProtocolName<1..2^8-1>
 *   supported_versions (43, in a ClientHello) = versions<2..254> of uint16
 *   encrypted_client_hello (0xfe0d) = only its presence matters here
 *
 * Deliberate choices:
 * - RFC 8446 asks for extensions<8..>, but RFC 5246 allows an empty block and some old
 *   clients send one; an empty block is accepted (it carries nothing we route on).
 * - A record that carries the end of the hello and then more handshake bytes is malformed:
 *   a client has nothing else to send before the server answers.
 * - Names in server_name entries of unknown name_type are skipped by their uint16 length.
 * - ALPN: the list's framing is checked (list length equal to the extension's, no empty list,
 *   no empty name, no name past the list's end) and a hello that breaks it is malformed. A
 *   name's bytes are kept whatever they are, one character per byte: RFC 7301 §3.1 makes them
 *   opaque, and RFC 8701 GREASE values (0x0A0A, …) are not printable. Routing compares them
 *   exactly with the configured ids (printable ASCII, config/parse.ts), and the log escapes
 *   every character outside printable ASCII (proxy/observe/log.ts).
 */

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const MAX_RECORD_LENGTH = 16384;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;
const TLS13 = 0x0304;
const MAX_NAME = 253;

/*
 * Every record adds a 5-byte header, and TLS lets a client cut the hello into records as small
 * as one byte. Without a bound on that overhead a client could keep us answering `incomplete`
 * for ever; room for 256 record headers covers any real fragmentation (openssl's smallest
 * max_send_frag, 512, needs 33 records for a 16 KiB hello).
 */
const MAX_RECORD_OVERHEAD = RECORD_HEADER * 256;

/**
 * The most bytes a hello under `maxSize` can occupy on the wire. Once a buffer is this long,
 * {@linkcode parseClientHello} no longer answers `incomplete`, so a sniffer can use it as its
 * byte cap.
 */
export function maxHelloWireBytes(maxSize: number = MAX_HELLO_SIZE): number {
  return maxSize + HANDSHAKE_HEADER + MAX_RECORD_OVERHEAD;
}

const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: "incomplete" });
const NOT_TLS: ClientHelloResult = Object.freeze({ kind: "not-tls" });

function malformed(reason: string): ClientHelloResult {
  return { kind: "malformed", reason };
}

/*
 * Duplicate extension types must be found in linear time whatever the client sends (a hello
 * can hold thousands of empty extensions). One table for the whole module, stamped with a
 * per-call generation, avoids both a Set per call and clearing 64 K entries each time. It is
 * invisible to callers: parsing is synchronous, so no two calls share it at once.
 */
const seenExtension = new Uint16Array(65536);
let generation = 0;

function nextGeneration(): number {
  generation++;
  if (generation === 0x10000) {
    seenExtension.fill(0);
    generation = 1;
  }
  return generation;
}

/*
 * Fragments of a multi-record hello are gathered here. A fresh Uint8Array per call cost about
 * 4x the whole parse of a 2 KB hello (its backing store lives outside the JS heap); reuse is
 * safe because results hold only strings copied out of it, and calls are synchronous.
 */
let gatherScratch = new Uint8Array(MAX_HELLO_SIZE);

// Host names are at most 253 bytes; decoding through one scratch buffer avoids a string per byte.
const nameScratch = new Uint8Array(MAX_NAME + 1);

/**
 * Parse the start of a downstream byte stream as a TLS ClientHello.
 *
 * Never throws. Every proper prefix of a valid hello yields `incomplete`; extra bytes after
 * the hello's last record are ignored and `end` points at them.
 *
 * @param buf the bytes received so far, from the first byte of the connection
 * @param maxSize cap on the handshake message length; longer hellos are `malformed`
 * @returns `incomplete`, `not-tls`, `malformed` with a reason, or `hello`
 * @example
 * ```ts
 * import { parseClientHello } from "./client_hello.ts";
 * const r = parseClientHello(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
 * if (r.kind !== "not-tls") throw new Error("plain HTTP is not TLS");
 * ```
 */
export function parseClientHello(
  buf: Uint8Array,
  maxSize: number = MAX_HELLO_SIZE,
): ClientHelloResult {
  const n = buf.length;
  if (n === 0) return INCOMPLETE;
  const first = buf[0];
  if (first !== CONTENT_HANDSHAKE) {
    // SSLv2-compatible hellos start with a 2-byte length whose high bit is set, then
    // msg_type 1. Other bytes with the high bit set are left to other protocols.
    if (first & 0x80) {
      if (n < 3) return INCOMPLETE;
      if (buf[2] === 1) return malformed("sslv2-style hello is not supported");
    }
    return NOT_TLS;
  }

  const wireLimit = maxHelloWireBytes(maxSize);
  let off = 0; // start of the current record
  let records = 0;
  let hsBefore = 0; // handshake bytes carried by the records before the current one
  let hsLen = -1; // the ClientHello's length, once all 4 handshake header bytes are in
  let hsLenAcc = 0;

  for (;;) {
    // Each record needs a header and at least one byte; refuse before waiting for it.
    if (off + RECORD_HEADER + 1 > wireLimit) {
      return malformed(`hello needs more than ${wireLimit} bytes of records`);
    }
    if (off >= n) return INCOMPLETE;
    const type = buf[off];
    if (type !== CONTENT_HANDSHAKE) {
      return malformed(`record of type ${type} inside the client hello`);
    }
    if (off + 1 >= n) return INCOMPLETE;
    if (buf[off + 1] !== 3) return malformed(`record version major ${buf[off + 1]} is not 3`);
    if (off + RECORD_HEADER > n) return INCOMPLETE;
    const recLen = (buf[off + 3] << 8) | buf[off + 4];
    if (recLen === 0) return malformed("empty handshake record");
    if (recLen > MAX_RECORD_LENGTH) {
      return malformed(`record length ${recLen} exceeds ${MAX_RECORD_LENGTH}`);
    }
    const fragStart = off + RECORD_HEADER;
    const fragEnd = fragStart + recLen;
    if (fragEnd > wireLimit) {
      return malformed(`hello needs more than ${wireLimit} bytes of records`);
    }
    records++;

    // The 4-byte handshake header may itself be cut over records, so read it byte by byte
    // as far as this record carries it and as far as it has arrived.
    if (hsBefore < HANDSHAKE_HEADER) {
      let headerEnd = fragStart + (HANDSHAKE_HEADER - hsBefore);
      if (headerEnd > fragEnd) headerEnd = fragEnd;
      if (headerEnd > n) headerEnd = n;
      for (let i = fragStart; i < headerEnd; i++) {
        const at = hsBefore + (i - fragStart);
        const b = buf[i];
        if (at === 0) {
          if (b !== HANDSHAKE_CLIENT_HELLO) {
            return malformed(`handshake type ${b} is not client_hello`);
          }
        } else {
          hsLenAcc = (hsLenAcc << 8) | b;
          if (at === HANDSHAKE_HEADER - 1) {
            if (hsLenAcc > maxSize) {
              return malformed(`hello length ${hsLenAcc} exceeds cap ${maxSize}`);
            }
            hsLen = hsLenAcc;
          }
        }
      }
    }

    const hsAfter = hsBefore + recLen;
    if (hsLen >= 0) {
      const msgEnd = HANDSHAKE_HEADER + hsLen;
      if (hsAfter > msgEnd) {
        return malformed(`record carries ${hsAfter - msgEnd} bytes after the client hello`);
      }
      if (fragEnd > n) return INCOMPLETE;
      if (hsAfter === msgEnd) {
        return parseBody(buf, records, fragEnd, hsLen);
      }
    } else if (fragEnd > n) {
      return INCOMPLETE;
    }
    hsBefore = hsAfter;
    off = fragEnd;
  }
}

/*
 * All records of the hello are in buf[0, end). A hello in one record is read where it lies;
 * a fragmented one is copied once into a contiguous buffer.
 */
function parseBody(
  buf: Uint8Array,
  records: number,
  end: number,
  hsLen: number,
): ClientHelloResult {
  if (records === 1) {
    const start = RECORD_HEADER + HANDSHAKE_HEADER;
    return parseClientHelloBody(buf, start, start + hsLen, records, end);
  }
  if (gatherScratch.length < hsLen) gatherScratch = new Uint8Array(hsLen);
  const body = gatherScratch;
  let skip = HANDSHAKE_HEADER;
  let filled = 0;
  for (let off = 0; off < end;) {
    const recLen = (buf[off + 3] << 8) | buf[off + 4];
    let from = off + RECORD_HEADER;
    const to = from + recLen;
    if (skip > 0) {
      const s = skip < recLen ? skip : recLen;
      from += s;
      skip -= s;
    }
    if (to > from) {
      body.set(buf.subarray(from, to), filled);
      filled += to - from;
    }
    off = to;
  }
  return parseClientHelloBody(body, 0, hsLen, records, end);
}

function u16(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1];
}

/** Parse ClientHello (after the handshake header) held in b[p, end). */
function parseClientHelloBody(
  b: Uint8Array,
  p: number,
  end: number,
  records: number,
  wireEnd: number,
): ClientHelloResult {
  if (end - p < 2 + 32 + 1) return malformed("client hello shorter than its fixed fields");
  const legacyVersion = u16(b, p);
  p += 2 + 32;

  const sessionIdLen = b[p++];
  if (sessionIdLen > 32) return malformed(`session id length ${sessionIdLen} exceeds 32`);
  if (end - p < sessionIdLen) return malformed("session id overruns the hello");
  p += sessionIdLen;

  if (end - p < 2) return malformed("cipher suites length missing");
  const suitesLen = u16(b, p);
  p += 2;
  if (suitesLen === 0 || (suitesLen & 1) !== 0) {
    return malformed(`cipher suites length ${suitesLen} is not a non-zero even number`);
  }
  if (end - p < suitesLen) return malformed("cipher suites overrun the hello");
  p += suitesLen;

  if (end - p < 1) return malformed("compression methods length missing");
  const compLen = b[p++];
  if (compLen === 0) return malformed("no compression methods");
  if (end - p < compLen) return malformed("compression methods overrun the hello");
  p += compLen;

  let sni: string | null = null;
  let idn = false;
  const alpn: string[] = [];
  let tls13 = false;
  let ech = false;

  if (p !== end) {
    if (end - p < 2) return malformed("extensions length cut short");
    const extsLen = u16(b, p);
    p += 2;
    if (extsLen !== end - p) {
      return malformed(`extensions length ${extsLen} does not match the ${end - p} bytes left`);
    }
    const gen = nextGeneration();
    while (p < end) {
      if (end - p < 4) return malformed("extension header cut short");
      const type = u16(b, p);
      const len = u16(b, p + 2);
      p += 4;
      if (len > end - p) return malformed(`extension ${type} length ${len} overruns the hello`);
      if (seenExtension[type] === gen) return malformed(`duplicate extension ${type}`);
      seenExtension[type] = gen;
      const dataEnd = p + len;
      if (type === EXT_SERVER_NAME) {
        const r = readServerName(b, p, dataEnd);
        if (r !== null && typeof r !== "string") return r;
        sni = r;
        idn = sniWasUtf8;
      } else if (type === EXT_ALPN) {
        const r = readAlpn(b, p, dataEnd, alpn);
        if (r !== null) return r;
      } else if (type === EXT_SUPPORTED_VERSIONS) {
        const r = readSupportedVersions(b, p, dataEnd);
        if (typeof r !== "boolean") return r;
        tls13 = r;
      } else if (type === EXT_ECH) {
        ech = true;
      }
      p = dataEnd;
    }
  }

  return {
    kind: "hello",
    hello: { sni, idn, alpn, end: wireEnd, records, legacyVersion, tls13, ech },
  };
}

/**
 * server_name extension data in b[p, end) → the normalised host name, null when the list has
 * only name types other than host_name (none is defined today, so there is no name to route
 * on), or malformed.
 */
function readServerName(
  b: Uint8Array,
  p: number,
  end: number,
): string | null | ClientHelloResult {
  if (end - p < 2) return malformed("server_name extension cut short");
  const listLen = u16(b, p);
  p += 2;
  if (listLen !== end - p) {
    return malformed(`server name list length ${listLen} does not match its extension`);
  }
  if (listLen === 0) return malformed("empty server name list");
  let host: string | null = null;
  while (p < end) {
    if (end - p < 3) return malformed("server name entry cut short");
    const nameType = b[p];
    const nameLen = u16(b, p + 1);
    p += 3;
    if (nameLen > end - p) return malformed("server name overruns its list");
    if (nameType === 0) {
      if (host !== null) return malformed("more than one host_name in server_name");
      const r = decodeHostName(b, p, p + nameLen);
      if (typeof r !== "string") return r;
      host = r;
    }
    p += nameLen;
  }
  return host;
}

/** Set by {@link decodeHostName}: the last name decoded was raw UTF-8, now in A-labels. */
let sniWasUtf8 = false;

/*
 * Lowercase, drop one trailing dot, and insist on letters, digits, '-', '_' and '.' with no
 * empty label: routing never has to guess what an odd name was meant to be. A name with bytes
 * above 0x7f is read as UTF-8 and converted to A-labels first (see decodeUtf8Name).
 */
function decodeHostName(b: Uint8Array, p: number, end: number): string | ClientHelloResult {
  sniWasUtf8 = false;
  for (let i = p; i < end; i++) {
    if (b[i] >= 0x80) return decodeUtf8Name(b.subarray(p, end));
  }
  return decodeAsciiName(b, p, end);
}

/** Characters the URL host parser treats as delimiters, or refuses; none is in a DNS name. */
const FORBIDDEN = "%/:?#@[\\]^|<>\x7f";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A server name sent as raw UTF-8, as `openssl s_client -servername bücher.example.test` and
 * some embedded clients send it, although RFC 6066 §3 asks for A-labels. It is decoded strictly
 * (invalid UTF-8 is refused), mapped and converted with IDNA (UTS #46, via the WHATWG URL host
 * parser behind `domainToASCII`; names that fail it are refused), and the A-label form must then
 * pass the same checks as a name sent in ASCII: the certificate and the config name the A-label,
 * so that is what is routed.
 */
function decodeUtf8Name(raw: Uint8Array): string | ClientHelloResult {
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    return malformed("server name is neither ASCII nor valid UTF-8");
  }
  // The URL host parser would read these as separators or drop them; none belongs in a name.
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) <= 0x20 || FORBIDDEN.includes(text[i])) {
      return malformed("invalid character in server name");
    }
  }
  const ascii = domainToASCII(text);
  if (ascii === "") {
    return malformed("server name is not a valid internationalized domain name (IDNA)");
  }
  const bytes = new Uint8Array(ascii.length);
  for (let i = 0; i < ascii.length; i++) {
    const c = ascii.charCodeAt(i);
    if (c >= 0x80) return malformed("invalid character in server name");
    bytes[i] = c;
  }
  const r = decodeAsciiName(bytes, 0, bytes.length);
  if (typeof r === "string") sniWasUtf8 = true;
  return r;
}

function decodeAsciiName(b: Uint8Array, p: number, end: number): string | ClientHelloResult {
  let len = end - p;
  if (len === 0) return malformed("empty server name");
  if (b[end - 1] === 0x2e) len--;
  if (len === 0) return malformed("server name has an empty label");
  if (len > MAX_NAME) return malformed(`server name longer than ${MAX_NAME} bytes`);
  let labelLen = 0;
  for (let i = 0; i < len; i++) {
    let c = b[p + i];
    if (c === 0x2e) {
      if (labelLen === 0) return malformed("server name has an empty label");
      labelLen = 0;
    } else {
      if (c >= 0x41 && c <= 0x5a) {
        c |= 0x20;
      } else if (
        !((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f)
      ) {
        return malformed("invalid character in server name");
      }
      labelLen++;
    }
    nameScratch[i] = c;
  }
  if (labelLen === 0) return malformed("server name has an empty label");
  return latin1(nameScratch, 0, len);
}

/** ALPN extension data in b[p, end) → appends names to out; returns malformed or null. */
function readAlpn(
  b: Uint8Array,
  p: number,
  end: number,
  out: string[],
): ClientHelloResult | null {
  if (end - p < 2) return malformed("alpn extension cut short");
  const listLen = u16(b, p);
  p += 2;
  if (listLen !== end - p) {
    return malformed(`alpn list length ${listLen} does not match its extension`);
  }
  if (listLen < 2) return malformed("alpn list is empty");
  while (p < end) {
    const nameLen = b[p++];
    if (nameLen === 0) return malformed("empty alpn protocol name");
    if (nameLen > end - p) return malformed("alpn protocol name overruns its list");
    out.push(latin1(b, p, p + nameLen));
    p += nameLen;
  }
  return null;
}

/** supported_versions data in b[p, end) → whether TLS 1.3 is offered, or malformed. */
function readSupportedVersions(b: Uint8Array, p: number, end: number): boolean | ClientHelloResult {
  if (end - p < 1) return malformed("supported_versions extension cut short");
  const listLen = b[p++];
  if (listLen !== end - p) {
    return malformed(`supported_versions length ${listLen} does not match its extension`);
  }
  if (listLen < 2 || (listLen & 1) !== 0) {
    return malformed(`supported_versions length ${listLen} is not a non-zero even number`);
  }
  for (; p < end; p += 2) {
    if (u16(b, p) === TLS13) return true;
  }
  return false;
}

// Names here are short (ALPN ≤ 255 bytes, hosts ≤ 253), well under the argument-count limit.
function latin1(b: Uint8Array, p: number, end: number): string {
  // Interning the two names nearly every client offers saves a string per hello.
  const len = end - p;
  if (len === 2 && b[p] === 0x68 && b[p + 1] === 0x32) return "h2";
  if (
    len === 8 && b[p] === 0x68 && b[p + 1] === 0x74 && b[p + 2] === 0x74 && b[p + 3] === 0x70 &&
    b[p + 4] === 0x2f && b[p + 5] === 0x31 && b[p + 6] === 0x2e && b[p + 7] === 0x31
  ) {
    return "http/1.1";
  }
  return String.fromCharCode.apply(null, b.subarray(p, end) as unknown as number[]);
}
