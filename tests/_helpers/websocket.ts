/**
 * A small RFC 6455 WebSocket client over TLS, for names the system resolver does not know.
 *
 * Deno's own `WebSocket` resolves the URL's host, so it cannot reach `app.example.test` on
 * loopback. This client dials 127.0.0.1 with `Deno.connectTls`, sends the test name as SNI (and
 * checks the certificate against it) through `Symbol.for("unstableServerName")`, performs the
 * opening handshake itself (checking `Sec-WebSocket-Accept`) and then speaks frames: masked from
 * the client, unmasked from the server, continuation frames reassembled.
 *
 * The module also exports the two pieces it is built from, {@linkcode connectTlsByName} and
 * {@linkcode ConnReader}, for tests that speak raw HTTP/1.1 over TLS.
 *
 * @module
 */

import { createHash } from "node:crypto";

const LOOPBACK = "127.0.0.1";
const SERVER_NAME = Symbol.for("unstableServerName");
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Where and how to open a TLS connection by name. */
export interface TlsTarget {
  /** The port on 127.0.0.1. */
  port: number;
  /** Sent as SNI and checked against the server's certificate. */
  serverName: string;
  /** Trust anchors (PEM). Without them the system store is used. */
  caCerts?: string[];
  /** ALPN protocols to offer. Default `["http/1.1"]`. */
  alpn?: string[];
  /** Give up on the TCP connect and TLS handshake after this long. Default 5000. */
  timeoutMs?: number;
}

/** A TLS connection with its handshake done. */
export interface NamedTlsConn {
  conn: Deno.TlsConn;
  /** The negotiated ALPN protocol, or null. */
  alpn: string | null;
}

/**
 * Opens TLS to 127.0.0.1:`port` as if the host were `serverName`, and finishes the handshake.
 *
 * @throws {Error} when the connection or the handshake fails or takes longer than `timeoutMs`
 * @example
 * ```ts ignore
 * const { conn, alpn } = await connectTlsByName({
 *   port,
 *   serverName: "app.example.test",
 *   caCerts: [readCert("ca")],
 * });
 * ```
 */
export async function connectTlsByName(target: TlsTarget): Promise<NamedTlsConn> {
  const conn = await Deno.connectTls(
    {
      hostname: LOOPBACK,
      port: target.port,
      caCerts: target.caCerts,
      alpnProtocols: target.alpn ?? ["http/1.1"],
      [SERVER_NAME]: target.serverName,
    } as Deno.ConnectTlsOptions,
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`TLS handshake with ${target.serverName} timed out`)),
      target.timeoutMs ?? 5000,
    );
  });
  try {
    const info = await Promise.race([conn.handshake(), timeout]);
    return { conn, alpn: info.alpnProtocol };
  } catch (e) {
    closeQuietly(conn);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}

/** Writes all of `data`: `write` may take only part of it. */
export async function writeFully(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

/** Thrown by {@linkcode ConnReader} when a read does not finish in time. */
export class ReadTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not arrive within ${ms} ms`);
    this.name = "ReadTimeout";
  }
}

/**
 * A read buffer over a connection, with deadlines. Every method takes a timeout; a read that
 * misses it rejects with {@linkcode ReadTimeout} (the connection should then be closed, since a
 * Deno read cannot be cancelled).
 */
export class ConnReader {
  #buf = new Uint8Array(0);
  #eof = false;
  #pending: Promise<{ n: number | null } | { error: unknown }> | null = null;
  #chunk = new Uint8Array(64 * 1024);

  constructor(readonly conn: Deno.Conn) {}

  /** Bytes buffered and not yet returned. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** True once the peer has closed its side (or reset). */
  get eof(): boolean {
    return this.#eof;
  }

  /** Reads once more from the connection; false at end of stream. */
  async #more(deadline: number, what: string): Promise<boolean> {
    if (this.#eof) return false;
    const left = deadline - performance.now();
    // Settles to a value either way, so a read left pending by a timeout can never become an
    // unhandled rejection when the test closes the connection.
    this.#pending ??= this.conn.read(this.#chunk).then((n) => ({ n }), (error) => ({ error }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, left));
    });
    try {
      const result = await Promise.race([this.#pending, timeout]);
      if (result === "timeout") throw new ReadTimeout(what, Math.round(left));
      this.#pending = null;
      if ("error" in result && !isEndOfStream(result.error)) throw result.error;
      const n = "n" in result ? result.n : null;
      if (n === null) {
        this.#eof = true;
        return false;
      }
      const next = new Uint8Array(this.#buf.length + n);
      next.set(this.#buf, 0);
      next.set(this.#chunk.subarray(0, n), this.#buf.length);
      this.#buf = next;
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Exactly `n` bytes; rejects on EOF before that. */
  async readExactly(n: number, timeoutMs: number): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (!await this.#more(deadline, `${n} bytes`)) {
        throw new Error(`connection closed after ${this.#buf.length} of ${n} bytes`);
      }
    }
    return this.#take(n);
  }

  /** Everything up to and including `delimiter`; null on EOF before it. */
  async readUntil(delimiter: string, timeoutMs: number): Promise<Uint8Array | null> {
    const needle = encoder.encode(delimiter);
    const deadline = performance.now() + timeoutMs;
    for (let from = 0;;) {
      const at = indexOf(this.#buf, needle, from);
      if (at >= 0) return this.#take(at + needle.length);
      from = Math.max(0, this.#buf.length - needle.length + 1);
      if (!await this.#more(deadline, JSON.stringify(delimiter))) return null;
    }
  }

  /** Whatever is buffered, or the next chunk from the connection; null at EOF. */
  async readSome(timeoutMs: number): Promise<Uint8Array | null> {
    if (this.#buf.length === 0 && !await this.#more(performance.now() + timeoutMs, "data")) {
      return null;
    }
    return this.#take(this.#buf.length);
  }

  /** Everything until the peer closes. */
  async readToEnd(timeoutMs: number): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    while (await this.#more(deadline, "the end of the stream"));
    return this.#take(this.#buf.length);
  }
}

/** Errors that only say the peer (or this side) has closed the connection. */
function isEndOfStream(e: unknown): boolean {
  return e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BadResource ||
    e instanceof Deno.errors.UnexpectedEof || e instanceof Deno.errors.BrokenPipe ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.Interrupted;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** A parsed HTTP/1.x response head. */
export interface ResponseHead {
  status: number;
  reason: string;
  /** Lowercase names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  /** The head as received, for messages. */
  raw: string;
}

/** Parses an HTTP/1.x response head (status line and fields, ending in an empty line). */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const raw = decoder.decode(bytes);
  const lines = raw.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(raw.slice(0, 200))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(m[1]), reason: m[2], headers, raw };
}

/** One message (or control frame) received from the server. */
export type WebSocketMessage =
  | { kind: "text"; text: string }
  | { kind: "binary"; data: Uint8Array }
  | { kind: "ping"; data: Uint8Array }
  | { kind: "pong"; data: Uint8Array }
  /** `code` is null when the close frame carried no status (1005 on the other side). */
  | { kind: "close"; code: number | null; reason: string };

/** Options for {@linkcode openWebSocket}. */
export interface OpenWebSocketOptions extends TlsTarget {
  /** Path and query of the request. Default `/`. */
  path?: string;
  /** The Host header. Default `serverName:port`. */
  host?: string;
  /** Subprotocols to offer, in preference order. */
  protocols?: string[];
  /** More request headers. */
  headers?: [string, string][];
}

/** The opening handshake failed: the server answered, but not with a valid `101`. */
export class WebSocketHandshakeError extends Error {
  constructor(message: string, readonly response: ResponseHead | null) {
    super(message);
    this.name = "WebSocketHandshakeError";
  }
}

/** An open WebSocket. Dispose it (or call `abort`) to close the TCP connection. */
export interface WebSocketClient extends AsyncDisposable {
  /** The server's `101` response. */
  readonly response: ResponseHead;
  /** The subprotocol the server chose, or null. */
  readonly protocol: string | null;
  sendText(text: string): Promise<void>;
  sendBinary(data: Uint8Array): Promise<void>;
  ping(data?: Uint8Array): Promise<void>;
  /** Sends a close frame (with no payload when `code` is omitted). */
  close(code?: number, reason?: string): Promise<void>;
  /** The next message or control frame; rejects with {@linkcode ReadTimeout} after `timeoutMs`. */
  receive(timeoutMs?: number): Promise<WebSocketMessage>;
  /** Resolves true when the server closes the TCP connection within `timeoutMs`. */
  waitForEof(timeoutMs?: number): Promise<boolean>;
  /** Closes the TCP connection without a closing handshake. */
  abort(): void;
}

/** `base64(SHA-1(key + GUID))`, the value a server must return (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
}

const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

function frame(opcode: number, payload: Uint8Array): Uint8Array {
  // Client frames are always masked (RFC 6455 §5.3).
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const len = payload.length;
  const extra = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + extra + 4 + len);
  out[0] = 0x80 | opcode;
  const view = new DataView(out.buffer);
  if (extra === 0) out[1] = 0x80 | len;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    view.setUint16(2, len);
  } else {
    out[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(len));
  }
  out.set(mask, 2 + extra);
  const body = 2 + extra + 4;
  for (let i = 0; i < len; i++) out[body + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Opens a WebSocket over TLS to 127.0.0.1:`port` with `serverName` as SNI.
 *
 * @throws {WebSocketHandshakeError} when the server answers with anything but a valid `101`
 *   (wrong status, missing Upgrade/Connection, wrong `Sec-WebSocket-Accept`, or a subprotocol
 *   that was not offered)
 * @example
 * ```ts ignore
 * await using ws = await openWebSocket({
 *   port,
 *   serverName: "app.example.test",
 *   caCerts: [readCert("ca")],
 *   path: "/ws",
 *   protocols: ["chat.v2"],
 * });
 * await ws.sendText("hello");
 * const reply = await ws.receive();
 * ```
 */
export async function openWebSocket(opts: OpenWebSocketOptions): Promise<WebSocketClient> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const { conn } = await connectTlsByName({ ...opts, alpn: ["http/1.1"] });
  const reader = new ConnReader(conn);
  try {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    let request = `GET ${opts.path ?? "/"} HTTP/1.1\r\n` +
      `Host: ${opts.host ?? `${opts.serverName}:${opts.port}`}\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
    if (opts.protocols && opts.protocols.length > 0) {
      request += `Sec-WebSocket-Protocol: ${opts.protocols.join(", ")}\r\n`;
    }
    for (const [name, value] of opts.headers ?? []) request += `${name}: ${value}\r\n`;
    await writeFully(conn, encoder.encode(request + "\r\n"));
    const headBytes = await reader.readUntil("\r\n\r\n", timeoutMs);
    if (headBytes === null) {
      throw new WebSocketHandshakeError("the server closed before answering the upgrade", null);
    }
    const head = parseResponseHead(headBytes);
    const fail = (why: string) => new WebSocketHandshakeError(`${why}:\n${head.raw}`, head);
    if (head.status !== 101) throw fail(`expected 101, got ${head.status}`);
    if ((head.headers["upgrade"] ?? "").toLowerCase() !== "websocket") {
      throw fail("no `Upgrade: websocket`");
    }
    if (!(head.headers["connection"] ?? "").toLowerCase().split(/\s*,\s*/).includes("upgrade")) {
      throw fail("no `Connection: upgrade`");
    }
    if (head.headers["sec-websocket-accept"] !== acceptFor(key)) {
      throw fail("wrong Sec-WebSocket-Accept");
    }
    const protocol = head.headers["sec-websocket-protocol"] ?? null;
    if (protocol !== null && !(opts.protocols ?? []).includes(protocol)) {
      throw fail(`the server chose subprotocol "${protocol}", which was not offered`);
    }
    return makeClient(conn, reader, head, protocol, timeoutMs);
  } catch (e) {
    closeQuietly(conn);
    throw e;
  }
}

function makeClient(
  conn: Deno.TlsConn,
  reader: ConnReader,
  response: ResponseHead,
  protocol: string | null,
  defaultTimeout: number,
): WebSocketClient {
  let closed = false;
  const abort = () => {
    if (closed) return;
    closed = true;
    closeQuietly(conn);
  };

  const readFrame = async (deadline: number) => {
    const left = () => Math.max(1, deadline - performance.now());
    const h = await reader.readExactly(2, left());
    const fin = (h[0] & 0x80) !== 0;
    const opcode = h[0] & 0x0f;
    if ((h[1] & 0x80) !== 0) throw new Error("the server sent a masked frame (RFC 6455 §5.1)");
    let len = h[1] & 0x7f;
    if (len === 126) {
      len = new DataView((await reader.readExactly(2, left())).buffer).getUint16(0);
    } else if (len === 127) {
      len = Number(new DataView((await reader.readExactly(8, left())).buffer).getBigUint64(0));
    }
    const payload = len === 0 ? new Uint8Array(0) : await reader.readExactly(len, left());
    return { fin, opcode, payload };
  };

  const receive = async (timeoutMs = defaultTimeout): Promise<WebSocketMessage> => {
    const deadline = performance.now() + timeoutMs;
    const parts: Uint8Array[] = [];
    let messageOpcode = -1;
    for (;;) {
      const f = await readFrame(deadline);
      if (f.opcode === OPCODE.ping) return { kind: "ping", data: f.payload };
      if (f.opcode === OPCODE.pong) return { kind: "pong", data: f.payload };
      if (f.opcode === OPCODE.close) {
        const p = f.payload;
        if (p.length < 2) return { kind: "close", code: null, reason: "" };
        return {
          kind: "close",
          code: (p[0] << 8) | p[1],
          reason: decoder.decode(p.subarray(2)),
        };
      }
      if (f.opcode !== OPCODE.continuation) messageOpcode = f.opcode;
      parts.push(f.payload);
      if (!f.fin) continue;
      const total = parts.reduce((n, p) => n + p.length, 0);
      const data = new Uint8Array(total);
      let o = 0;
      for (const p of parts) {
        data.set(p, o);
        o += p.length;
      }
      if (messageOpcode === OPCODE.text) return { kind: "text", text: decoder.decode(data) };
      if (messageOpcode === OPCODE.binary) return { kind: "binary", data };
      throw new Error(`unexpected opcode ${messageOpcode}`);
    }
  };

  return {
    response,
    protocol,
    sendText: (text) => writeFully(conn, frame(OPCODE.text, encoder.encode(text))),
    sendBinary: (data) => writeFully(conn, frame(OPCODE.binary, data)),
    ping: (data = new Uint8Array(0)) => writeFully(conn, frame(OPCODE.ping, data)),
    close: (code?: number, reason = "") => {
      let payload = new Uint8Array(0);
      if (code !== undefined) {
        const r = encoder.encode(reason);
        payload = new Uint8Array(2 + r.length);
        payload[0] = code >> 8;
        payload[1] = code & 0xff;
        payload.set(r, 2);
      }
      return writeFully(conn, frame(OPCODE.close, payload));
    },
    receive,
    async waitForEof(timeoutMs = defaultTimeout) {
      try {
        await reader.readToEnd(timeoutMs);
        return true;
      } catch (e) {
        if (e instanceof ReadTimeout) return false;
        throw e;
      }
    },
    abort,
    [Symbol.asyncDispose]() {
      abort();
      return Promise.resolve();
    },
  };
}
