/**
 * In-process upstream servers for end-to-end tests. Each binds 127.0.0.1 on port 0, tags its
 * replies with its name so a test can tell which backend a request reached, and records what
 * it saw.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type CertName, readCert, readKey } from "./certs.ts";
import { parseProxyHeader, type ProxyEndpoint, type ProxyHeader } from "./proxy_protocol.ts";

/** What every backend returns. */
export interface Backend extends AsyncDisposable {
  /** The name the backend puts in its replies. */
  readonly name: string;
  /** The bound port on 127.0.0.1. */
  readonly port: number;
  /** Stops listening and closes open connections. Safe to call more than once. */
  close(): Promise<void>;
}

/** A raw TCP backend from {@linkcode startTcpBackend}. */
export interface TcpBackend extends Backend {
  /** Connections accepted so far. */
  readonly connections: number;
  /** The peer of each accepted connection, in accept order. */
  readonly remoteAddrs: readonly Deno.NetAddr[];
}

/** One request as an HTTP backend saw it. */
export interface RecordedRequest {
  method: string;
  /** The full URL Deno.serve built (its host comes from Host or, under h2, `:authority`). */
  url: string;
  /** Path and query, as echoed in the reply body. */
  path: string;
  /** Header names are lowercase; repeated headers are joined with ", ". */
  headers: Record<string, string>;
  /** The request body decoded as UTF-8 ("" when there was none). */
  body: string;
  /** The TCP peer of the backend connection (edgemux's upstream side when proxied). */
  remoteAddr: Deno.NetAddr;
}

/** An HTTP(S) backend from {@linkcode startHttpBackend} or {@linkcode startTlsHttpBackend}. */
export interface HttpBackend extends Backend {
  /** Requests seen so far, in arrival order. */
  readonly requests: readonly RecordedRequest[];
}

/** What the PROXY protocol backend decoded from one connection. */
export interface ProxyProtocolRecord {
  /** `none`: the data did not start with a header; `invalid`: it started like one but broke. */
  version: "v1" | "v2" | "none" | "invalid";
  /** The decoded header (v1/v2 only). */
  header: ProxyHeader | null;
  /** Why the header was invalid (`invalid` only). */
  error: string | null;
  /** The endpoints reported in the reply: from the header, or the real socket's when the
   * header carries none (no header, v1 UNKNOWN, v2 LOCAL/UNSPEC). */
  source: ProxyEndpoint;
  destination: ProxyEndpoint;
  /** The real TCP peer of the backend connection. */
  peer: ProxyEndpoint;
  /** Application bytes that followed the header. */
  payload: Uint8Array;
}

/** A backend from {@linkcode startProxyProtocolBackend}. */
export interface ProxyProtocolBackend extends Backend {
  /** One record per connection, in the order the replies were sent. */
  readonly records: readonly ProxyProtocolRecord[];
}

const LOOPBACK = "127.0.0.1";
const BUFFER_SIZE = 16 * 1024;

/** `conn.write` may write only part of a buffer (docs/deno-runtime.md §4). */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    offset += await conn.write(data.subarray(offset));
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed by the other side of the test.
  }
}

/** An accept loop from {@linkcode serveTcp}. */
export interface TcpServer extends AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** The peer of each accepted connection, in accept order. */
  readonly remoteAddrs: readonly Deno.NetAddr[];
  /**
   * Stops listening, closes every open connection and waits for their handlers to settle. Safe
   * to call more than once.
   */
  close(): Promise<void>;
}

/**
 * Accepts on `listener` and runs `handle` per connection, closing the connection once `handle`
 * settles. A failure stays inside its connection (a backend must outlive a client that resets),
 * and `close` ends everything it started.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * // A server that says "hi" and hangs up.
 * await using server = serveTcp(
 *   Deno.listen({ hostname: "127.0.0.1", port: 0 }),
 *   async (conn) => {
 *     await conn.write(new TextEncoder().encode("hi"));
 *   },
 * );
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
 * assert.equal(await new Response(conn.readable).text(), "hi");
 * ```
 */
export function serveTcp<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  handle: (conn: C) => Promise<void>,
): TcpServer {
  const accepted: Deno.NetAddr[] = [];
  const open = new Set<C>();
  const tasks = new Set<Promise<void>>();
  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) {
        accepted.push(conn.remoteAddr as Deno.NetAddr);
        open.add(conn);
        const task = handle(conn)
          .catch(() => {})
          .finally(() => {
            open.delete(conn);
            closeQuietly(conn);
            tasks.delete(task);
          });
        tasks.add(task);
      }
    } catch {
      // The listener was closed.
    }
  })();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await acceptLoop;
      for (const conn of open) closeQuietly(conn);
      await Promise.all(tasks);
    })();
    return closing;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return accepted.length;
    },
    remoteAddrs: accepted,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A Deno.serve server from {@linkcode serveHttp}. */
export interface HttpServer extends AsyncDisposable {
  /** The bound port on 127.0.0.1. */
  readonly port: number;
  /** Stops the server, cutting off requests in flight. Safe to call more than once. */
  close(): Promise<void>;
}

/** Options for {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** Deno.serve's `onError`, for a handler that may throw. */
  onError?: (error: unknown) => Response | Promise<Response>;
}

/**
 * Serves `handler` with Deno.serve on 127.0.0.1, on a port the kernel picks, without the banner
 * Deno.serve prints.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await using server = serveHttp(() => new Response("hello\n"));
 * const res = await fetch(`http://127.0.0.1:${server.port}/`);
 * assert.equal(await res.text(), "hello\n");
 * ```
 */
export function serveHttp(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  opts: ServeHttpOptions = {},
): HttpServer {
  const abort = new AbortController();
  const server = Deno.serve({
    hostname: LOOPBACK,
    port: 0,
    ...(opts.tls ?? {}),
    signal: abort.signal,
    // Deno.serve prints a banner unless onListen is given.
    onListen: () => {},
    ...(opts.onError ? { onError: opts.onError } : {}),
    handler,
  });
  let closing: Promise<void> | undefined;
  // Aborting, not shutdown(): shutdown() waits forever on a stalled request (docs/deno-runtime.md §3)
  // and calling abort() after it crashes the process.
  const close = () => {
    closing ??= (async () => {
      abort.abort();
      await server.finished;
    })();
    return closing;
  };
  return { port: server.addr.port, close, [Symbol.asyncDispose]: close };
}

/**
 * Starts a raw TCP backend.
 *
 * - `echo` writes back every byte it reads; when the client half-closes it writes nothing more
 *   and closes its side.
 * - `digest` reads until the client half-closes, then writes
 *   `"<name> <byteCount> <sha256hex>\n"` and closes, so a reply proves the client's FIN
 *   travelled through the proxy and that no byte was lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await using backend = await startTcpBackend("ssh", "echo");
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: backend.port });
 * await conn.write(new TextEncoder().encode("hi"));
 * const buf = new Uint8Array(2);
 * assert.equal(await conn.read(buf), 2);
 * ```
 */
export function startTcpBackend(name: string, mode: "echo" | "digest"): Promise<TcpBackend> {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const handle = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(BUFFER_SIZE);
    if (mode === "echo") {
      for (let n; (n = await conn.read(buf)) !== null;) await writeAll(conn, buf.subarray(0, n));
      return;
    }
    const hash = createHash("sha256");
    let count = 0;
    for (let n; (n = await conn.read(buf)) !== null;) {
      hash.update(buf.subarray(0, n));
      count += n;
    }
    await writeAll(conn, new TextEncoder().encode(`${name} ${count} ${hash.digest("hex")}\n`));
  };
  const server = serveTcp(listener, handle);
  return Promise.resolve({
    name,
    port: server.port,
    get connections() {
      return server.connections;
    },
    remoteAddrs: server.remoteAddrs,
    close: server.close,
    [Symbol.asyncDispose]: server.close,
  });
}

function startRecordingServer(
  name: string,
  tls: { cert: string; key: string } | null,
): Promise<HttpBackend> {
  const requests: RecordedRequest[] = [];
  const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const url = new URL(req.url);
    const path = url.pathname + url.search;
    const headers: Record<string, string> = {};
    // Headers iterate with lowercase names and repeated values already joined.
    for (const [key, value] of req.headers) headers[key] = value;
    requests.push({
      method: req.method,
      url: req.url,
      path,
      headers,
      body: await req.text(),
      remoteAddr: info.remoteAddr,
    });
    return new Response(`backend ${name} ${req.method} ${path}\n`, {
      headers: { "x-backend": name, "content-type": "text/plain; charset=utf-8" },
    });
  };
  const server = serveHttp(handler, {
    tls: tls ?? undefined,
    // A client that gives up mid-request is normal in these tests.
    onError: () => new Response("backend error\n", { status: 500 }),
  });
  return Promise.resolve({
    name,
    port: server.port,
    requests,
    close: server.close,
    [Symbol.asyncDispose]: server.close,
  });
}

/**
 * Starts a plain HTTP backend (HTTP/1.1, and h2c with prior knowledge). Every request gets
 * status 200, header `x-backend: <name>` and body `"backend <name> <method> <path>\n"`, where
 * path includes the query string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await using prometheus = await startHttpBackend("prometheus");
 * const res = await fetch(`http://127.0.0.1:${prometheus.port}/metrics`);
 * assert.equal(await res.text(), "backend prometheus GET /metrics\n");
 * assert.equal(prometheus.requests[0].path, "/metrics");
 * ```
 */
export function startHttpBackend(name: string): Promise<HttpBackend> {
  return startRecordingServer(name, null);
}

/**
 * Starts an HTTPS backend with a test certificate, offering ALPN h2 and http/1.1 (Deno.serve
 * always offers both). Replies and records like {@linkcode startHttpBackend}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCert } from "./certs.ts";
 *
 * // backend-internal's certificate also names IP 127.0.0.1, so fetch can verify it by IP.
 * await using backend = await startTlsHttpBackend("internal", "backend-internal");
 * using client = Deno.createHttpClient({ caCerts: [readCert("ca")] });
 * const res = await fetch(`https://127.0.0.1:${backend.port}/x`, { client });
 * assert.equal(res.headers.get("x-backend"), "internal");
 * assert.equal(await res.text(), "backend internal GET /x\n");
 * ```
 */
export function startTlsHttpBackend(name: string, certName: CertName): Promise<HttpBackend> {
  return startRecordingServer(name, { cert: readCert(certName), key: readKey(certName) });
}

/** Options for {@linkcode startProxyProtocolBackend}. */
export interface ProxyProtocolBackendOptions {
  /**
   * How long to wait for the first bytes before deciding there is no header. A client that
   * sends nothing is answered with `proxy=none` after this long. Default 1000 ms.
   */
  firstByteTimeoutMs?: number;
}

function formatEndpoint({ address, port }: ProxyEndpoint): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function endpointOf(addr: Deno.Addr): ProxyEndpoint {
  const net = addr as Deno.NetAddr;
  return { address: net.hostname, port: net.port };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Reads one chunk, or null on EOF or when `ms` pass first. */
async function readWithin(conn: Deno.Conn, buf: Uint8Array, ms: number): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    const result = await Promise.race([conn.read(buf), timeout]);
    return result === "timeout" ? null : result;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts a raw TCP backend that decodes a PROXY protocol header (v1 text or v2 binary) at the
 * start of each connection, replies
 * `"<name> proxy=<v1|v2|none> src=<addr>:<port> dst=<addr>:<port>\n"` (IPv6 in brackets), or
 * `"<name> proxy=invalid error=<reason>\n"`, then half-closes, drains and closes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await using backend = await startProxyProtocolBackend("pp");
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: backend.port });
 * await conn.write(new TextEncoder().encode("PROXY TCP4 192.0.2.1 192.0.2.2 1000 443\r\n"));
 * const reply = await new Response(conn.readable).text();
 * assert.equal(reply, "pp proxy=v1 src=192.0.2.1:1000 dst=192.0.2.2:443\n");
 * ```
 */
export function startProxyProtocolBackend(
  name: string,
  opts: ProxyProtocolBackendOptions = {},
): Promise<ProxyProtocolBackend> {
  const firstByteTimeoutMs = opts.firstByteTimeoutMs ?? 1000;
  // A header may arrive in pieces, but never slower than this once it has started.
  const headerTimeoutMs = Math.max(firstByteTimeoutMs, 2000);
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const records: ProxyProtocolRecord[] = [];

  const handle = async (conn: Deno.Conn) => {
    const peer = endpointOf(conn.remoteAddr);
    const local = endpointOf(conn.localAddr);
    const buf = new Uint8Array(BUFFER_SIZE);
    let data: Uint8Array = new Uint8Array(0);
    const deadline = Date.now() + headerTimeoutMs;
    let result = parseProxyHeader(data);
    while (result.kind === "incomplete") {
      const wait = data.length === 0 ? firstByteTimeoutMs : deadline - Date.now();
      const n = wait > 0 ? await readWithin(conn, buf, wait) : null;
      if (n === null) break;
      data = concat(data, buf.subarray(0, n));
      result = parseProxyHeader(data);
    }

    let record: ProxyProtocolRecord;
    if (result.kind === "header") {
      const { header } = result;
      const useHeader = header.command === "proxy" && header.source !== null;
      record = {
        version: header.version === 1 ? "v1" : "v2",
        header,
        error: null,
        source: useHeader && header.source ? header.source : peer,
        destination: useHeader && header.destination ? header.destination : local,
        peer,
        payload: data.slice(header.length),
      };
    } else if (result.kind === "none" || data.length === 0) {
      record = {
        version: "none",
        header: null,
        error: null,
        source: peer,
        destination: local,
        peer,
        payload: data,
      };
    } else {
      const error = result.kind === "malformed"
        ? result.reason
        : `header incomplete after ${data.length} bytes`;
      record = {
        version: "invalid",
        header: null,
        error,
        source: peer,
        destination: local,
        peer,
        payload: new Uint8Array(0),
      };
    }
    const reply = record.version === "invalid"
      ? `${name} proxy=invalid error=${record.error}\n`
      : `${name} proxy=${record.version} src=${formatEndpoint(record.source)} ` +
        `dst=${formatEndpoint(record.destination)}\n`;
    records.push(record);
    await writeAll(conn, new TextEncoder().encode(reply));
    // Closing with unread input would send RST, which can destroy the reply before the
    // client reads it; half-close and drain instead.
    await conn.closeWrite();
    while (await readWithin(conn, buf, 2000) !== null) {
      // Discard whatever the client still sends.
    }
  };

  const server = serveTcp(listener, handle);
  return Promise.resolve({
    name,
    port: server.port,
    records,
    close: server.close,
    [Symbol.asyncDispose]: server.close,
  });
}
