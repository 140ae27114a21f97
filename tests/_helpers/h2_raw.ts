/**
 * A deliberately tiny HTTP/2 client (RFC 9113) for tests that must send a `:path` exactly as
 * written: one request per TLS connection, header fields encoded as HPACK literals without
 * Huffman coding or indexing (RFC 7541 §6.2.2), so no byte of the path is touched on the way.
 * Real clients (fetch, curl, nghttp) parse and clean the URL first, which is what these tests
 * must avoid.
 *
 * Only what such a test needs is decoded from the answer: the `:status` (when the server sends
 * it as the first field, which every server does) and the DATA payload of stream 1, or the
 * RST_STREAM / GOAWAY that ended it.
 *
 * @module
 */

import { connectTlsByName, type TlsTarget } from "./websocket.ts";

/** How one raw HTTP/2 request ended. */
export type RawH2Result =
  | { kind: "response"; status: number | null; body: string }
  | { kind: "reset"; code: number }
  | { kind: "goaway"; code: number }
  | { kind: "closed" };

/** One request: the pseudo-header values are sent byte for byte (Latin-1 strings). */
export interface RawH2Request extends TlsTarget {
  method?: string;
  scheme?: string;
  authority: string;
  path: string;
  /** Extra header fields (lower-case names). */
  headers?: [string, string][];
}

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

/** RFC 7541 Appendix A: static table entries 8 to 14 are `:status` with these values. */
const STATIC_STATUS: Record<number, number> = {
  8: 200,
  9: 204,
  10: 206,
  11: 304,
  12: 400,
  13: 404,
  14: 500,
};

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), the first byte ORed with `flags`. */
function hpackInt(value: number, prefixBits: number, flags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out.push(value);
  return out;
}

/** A literal field without indexing, new name, plain (non-Huffman) strings. */
function literalField(name: string, value: string): number[] {
  const n = latin1(name);
  const v = latin1(value);
  return [0x00, ...hpackInt(n.length, 7, 0), ...n, ...hpackInt(v.length, 7, 0), ...v];
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = (payload.length >> 16) & 0xff;
  out[1] = (payload.length >> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  new DataView(out.buffer).setUint32(5, stream & 0x7fffffff);
  out.set(payload, 9);
  return out;
}

/** HPACK Huffman codes (RFC 7541 Appendix B) of the digits, enough for a `:status` value. */
const DIGIT_CODES: [code: number, bits: number][] = [
  [0x0, 5],
  [0x1, 5],
  [0x2, 5],
  [0x19, 6],
  [0x1a, 6],
  [0x1b, 6],
  [0x1c, 6],
  [0x1d, 6],
  [0x1e, 6],
  [0x1f, 6],
];

function huffmanDigits(bytes: Uint8Array): string | null {
  let acc = 0;
  let bits = 0;
  let out = "";
  let i = 0;
  while (out.length < 3) {
    while (bits < 6 && i < bytes.length) {
      acc = (acc << 8) | bytes[i++];
      bits += 8;
    }
    let found = false;
    for (let d = 0; d < 10; d++) {
      const [code, len] = DIGIT_CODES[d];
      if (bits >= len && ((acc >> (bits - len)) & ((1 << len) - 1)) === code) {
        out += String(d);
        bits -= len;
        acc &= (1 << bits) - 1;
        found = true;
        break;
      }
    }
    if (!found) return null;
  }
  return out;
}

/** The `:status` when it is the first field of a header block, else null. */
function statusOf(block: Uint8Array): number | null {
  const b = block[0];
  if (b === undefined) return null;
  if ((b & 0x80) !== 0) return STATIC_STATUS[b & 0x7f] ?? null;
  // A literal whose name is static entry 8 (":status"): with incremental indexing (6-bit prefix),
  // or without / never indexed (4-bit prefix).
  const nameIndex = (b & 0xc0) === 0x40 ? b & 0x3f : b & 0x0f;
  if (nameIndex < 8 || nameIndex > 14) return null;
  const len = block[1] & 0x7f;
  const value = block.subarray(2, 2 + len);
  const text = (block[1] & 0x80) !== 0 ? huffmanDigits(value) : new TextDecoder().decode(value);
  return text === null ? null : Number(text);
}

/**
 * Sends one GET (or `method`) on a fresh TLS connection offering only `h2`, and reads stream 1 to
 * its end.
 *
 * @throws {Error} when the server does not choose h2, or nothing ends the stream in time
 */
export async function rawH2Request(req: RawH2Request, timeoutMs = 5000): Promise<RawH2Result> {
  const { conn, alpn } = await connectTlsByName({ ...req, alpn: ["h2"] });
  try {
    if (alpn !== "h2") throw new Error(`the server chose ALPN ${alpn}, not h2`);
    const block = [
      ...literalField(":method", req.method ?? "GET"),
      ...literalField(":scheme", req.scheme ?? "https"),
      ...literalField(":authority", req.authority),
      ...literalField(":path", req.path),
    ];
    for (const [n, v] of req.headers ?? []) block.push(...literalField(n, v));
    const first = [
      latin1(PREFACE),
      frame(SETTINGS, 0, 0, new Uint8Array(0)),
      frame(HEADERS, END_STREAM | END_HEADERS, 1, new Uint8Array(block)),
    ];
    for (const part of first) await writeFully(conn, part);

    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      return await readStream(conn);
    } catch (e) {
      throw new Error(`raw h2 request for ${JSON.stringify(req.path)} got no end: ${e}`);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function writeFully(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

async function readStream(conn: Deno.Conn): Promise<RawH2Result> {
  let buf = new Uint8Array(0);
  let status: number | null = null;
  let body = "";
  const decoder = new TextDecoder("latin1");
  const chunk = new Uint8Array(16 * 1024);
  for (;;) {
    while (buf.length >= 9) {
      const len = (buf[0] << 16) | (buf[1] << 8) | buf[2];
      if (buf.length < 9 + len) break;
      const type = buf[3];
      const flags = buf[4];
      const stream = new DataView(buf.buffer, buf.byteOffset).getUint32(5) & 0x7fffffff;
      const payload = buf.slice(9, 9 + len);
      buf = buf.slice(9 + len);
      if (type === SETTINGS && stream === 0 && (flags & ACK) === 0) {
        await writeFully(conn, frame(SETTINGS, ACK, 0, new Uint8Array(0)));
      } else if (type === PING && (flags & ACK) === 0) {
        await writeFully(conn, frame(PING, ACK, 0, payload));
      } else if (type === GOAWAY) {
        const code = new DataView(payload.buffer).getUint32(4);
        // A GOAWAY after the response (graceful close) is no failure of this stream.
        if (status === null) return { kind: "goaway", code };
      } else if (stream === 1 && type === RST_STREAM) {
        return { kind: "reset", code: new DataView(payload.buffer).getUint32(0) };
      } else if (stream === 1 && type === HEADERS) {
        let block = payload;
        if ((flags & 0x8) !== 0) block = block.subarray(1, block.length - block[0]); // PADDED
        if ((flags & 0x20) !== 0) block = block.subarray(5); // PRIORITY
        if (status === null) status = statusOf(block);
        if ((flags & END_STREAM) !== 0) return { kind: "response", status, body };
      } else if (stream === 1 && type === DATA) {
        let data = payload;
        if ((flags & 0x8) !== 0) data = data.subarray(1, data.length - data[0]);
        body += decoder.decode(data);
        if ((flags & END_STREAM) !== 0) return { kind: "response", status, body };
      }
    }
    const n = await conn.read(chunk);
    if (n === null) return { kind: "closed" };
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
  }
}
