/**
 * A minimal HTTP/2 client written frame by frame (RFC 9113), for requests that real clients
 * refuse to send: a `:path` with raw UTF-8 or control bytes, an `:authority` with port 0, 65536
 * or letters. Header fields go as HPACK literals without indexing and without Huffman coding
 * (RFC 7541 §6.2.2), so any bytes can be sent. The response's status is read from the HEADERS
 * block when it is a static-table index (200, 204, 206, 304, 400, 404, 500) and otherwise left
 * null; the DATA frames give the body.
 *
 * @module
 */

import { readCert } from "./certs.ts";
import { connectTlsByName, ConnReader, writeFully } from "./websocket.ts";

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

/** HPACK static table entries for :status (RFC 7541 Appendix A). */
const STATIC_STATUS: Record<number, number> = {
  8: 200,
  9: 204,
  10: 206,
  11: 304,
  12: 400,
  13: 404,
  14: 500,
};

/** What one raw request got back. */
export interface RawH2Response {
  /** The :status, when sent as a static-table index; null otherwise (see `statusBytes`). */
  status: number | null;
  /** The raw HPACK block of the response's HEADERS frame. */
  statusBytes: Uint8Array | null;
  /** The response body (all DATA frames of stream 1). */
  body: string;
  /** The stream was reset (RST_STREAM) with this error code, or null. */
  reset: number | null;
  /** The connection was ended with GOAWAY and this error code, or null. */
  goaway: number | null;
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

/** An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix bits' high part given. */
function hpackInt(value: number, n: number, high: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out.push(value);
  return out;
}

/** A literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2). */
function literal(name: Uint8Array, value: Uint8Array): number[] {
  return [0x00, ...hpackInt(name.length, 7, 0), ...name, ...hpackInt(value.length, 7, 0), ...value];
}

/**
 * Sends one GET with the given pseudo-header and header bytes over TLS with ALPN h2 to
 * 127.0.0.1:`port` as `serverName`, and reads until stream 1 ends.
 *
 * @param fields Name/value pairs in order, pseudo-headers first; strings are sent as UTF-8.
 */
export async function rawH2Request(
  port: number,
  serverName: string,
  fields: [string | Uint8Array, string | Uint8Array][],
  timeoutMs = 5000,
): Promise<RawH2Response> {
  const { conn, alpn } = await connectTlsByName({
    port,
    serverName,
    caCerts: [readCert("ca")],
    alpn: ["h2"],
  });
  using _conn = conn;
  if (alpn !== "h2") throw new Error(`ALPN gave ${alpn}, not h2`);
  const enc = new TextEncoder();
  const bytes = (v: string | Uint8Array) => typeof v === "string" ? enc.encode(v) : v;
  const block = fields.flatMap(([n, v]) => literal(bytes(n), bytes(v)));
  await writeFully(
    conn,
    new Uint8Array([
      ...enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      ...frame(SETTINGS, 0, 0, new Uint8Array(0)),
      ...frame(HEADERS, END_HEADERS | END_STREAM, 1, new Uint8Array(block)),
    ]),
  );
  const reader = new ConnReader(conn);
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(1, deadline - performance.now());
  const result: RawH2Response = {
    status: null,
    statusBytes: null,
    body: "",
    reset: null,
    goaway: null,
  };
  const dec = new TextDecoder();
  for (;;) {
    let header: Uint8Array;
    try {
      header = await reader.readExactly(9, left());
    } catch {
      return result; // Closed (or nothing more in time).
    }
    const length = (header[0] << 16) | (header[1] << 8) | header[2];
    const type = header[3];
    const flags = header[4];
    const stream = new DataView(header.buffer, header.byteOffset).getUint32(5) & 0x7fffffff;
    const payload = length > 0 ? await reader.readExactly(length, left()) : new Uint8Array(0);
    if (type === SETTINGS && (flags & ACK) === 0) {
      await writeFully(conn, frame(SETTINGS, ACK, 0, new Uint8Array(0)));
    } else if (type === GOAWAY) {
      result.goaway = new DataView(payload.buffer, payload.byteOffset).getUint32(4);
      return result;
    } else if (stream === 1 && type === HEADERS) {
      result.statusBytes = payload;
      // An indexed field (1xxxxxxx) that is a :status entry; the first field is :status.
      const first = payload[0];
      if ((first & 0x80) !== 0) result.status = STATIC_STATUS[first & 0x7f] ?? null;
      if ((flags & END_STREAM) !== 0) return result;
    } else if (stream === 1 && type === DATA) {
      result.body += dec.decode(payload, { stream: true });
      if ((flags & END_STREAM) !== 0) return result;
    } else if (stream === 1 && type === RST_STREAM) {
      result.reset = new DataView(payload.buffer, payload.byteOffset).getUint32(0);
      return result;
    }
  }
}
