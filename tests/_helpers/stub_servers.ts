/**
 * Small upstream servers that a test can stop and start again on the same port, to play a
 * backend server that dies and comes back. Each tags its replies with its name.
 *
 * - {@linkcode startTaggedEcho}: TCP; answers every line `L` with `"<name> L\n"` and keeps the
 *   connection open until the client closes it.
 * - {@linkcode startStubHttp}: HTTP/1.1 written by hand; a handler decides per request to
 *   answer (any status), close the connection without an answer, or never answer.
 *
 * @module
 */

import { serveTcp, type TcpServer } from "./backends.ts";

const LOOPBACK = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A server that can be stopped (as if killed) and started again on the same port. */
export interface RestartableServer extends AsyncDisposable {
  readonly name: string;
  /** The port on 127.0.0.1; the same after a restart. */
  readonly port: number;
  /** `host:port`, as edgemux labels the server in its records. */
  readonly label: string;
  /** Whether it is listening now. */
  readonly running: boolean;
  /** Connections accepted so far, over all runs. */
  readonly connections: number;
  /** performance.now() of each accepted connection, over all runs. */
  readonly acceptedAt: readonly number[];
  /**
   * Stops listening and closes every open connection at once, like a crashed process. Safe to
   * call when stopped.
   */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): void;
}

interface Run {
  server: TcpServer;
  /** Resolves the promise the run's handlers get, for those that wait "forever". */
  stop: () => void;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

/** The stop/start machinery shared by both servers: one accept loop per run. */
function restartable(
  name: string,
  handle: (conn: Deno.Conn, stopped: Promise<void>) => Promise<void>,
): RestartableServer {
  let port = 0;
  let run: Run | null = null;
  const acceptedAt: number[] = [];

  const start = () => {
    if (run !== null) return;
    const listener = Deno.listen({ hostname: LOOPBACK, port });
    port = (listener.addr as Deno.NetAddr).port;
    let stop = () => {};
    const stopped = new Promise<void>((resolve) => stop = resolve);
    const server = serveTcp(listener, (conn) => {
      acceptedAt.push(performance.now());
      return handle(conn, stopped);
    });
    run = { server, stop };
  };

  const stopRun = async () => {
    const r = run;
    if (r === null) return;
    run = null;
    r.stop();
    await r.server.close();
  };

  start();
  return {
    name,
    get port() {
      return port;
    },
    get label() {
      return `${LOOPBACK}:${port}`;
    },
    get running() {
      return run !== null;
    },
    get connections() {
      return acceptedAt.length;
    },
    acceptedAt,
    stop: stopRun,
    start,
    [Symbol.asyncDispose]: stopRun,
  };
}

/**
 * A TCP server that answers each line `L` with `"<name> L\n"` and stays open until the client
 * closes. A client that connects and closes without a word (a health check) is fine.
 */
export function startTaggedEcho(name: string): RestartableServer {
  return restartable(name, async (conn) => {
    const buf = new Uint8Array(4096);
    let pending = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      pending += decoder.decode(buf.subarray(0, n), { stream: true });
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        await writeAll(conn, encoder.encode(`${name} ${line}\n`));
      }
    }
  });
}

/** One request as the stub saw it. */
export interface StubRequest {
  method: string;
  path: string;
  /** Lowercase names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** performance.now() when the request (with its body) had arrived. */
  at: number;
}

/** What the stub does with a request. */
export type StubReply =
  | { status: number; headers?: Record<string, string>; body?: string }
  /** Close the connection at once, without an answer. */
  | "close"
  /** Never answer (until the server is stopped or the client gives up). */
  | "hang";

/** A stub HTTP server. */
export interface StubHttpServer extends RestartableServer {
  /** Every request seen so far, over all runs. */
  readonly requests: StubRequest[];
}

/** The default reply: 200, `x-backend: <name>`, body `"<name> <method> <path>\n"`. */
export function taggedOk(name: string, req: StubRequest): StubReply {
  return { status: 200, body: `${name} ${req.method} ${req.path}\n` };
}

/**
 * Starts an HTTP/1.1 server on 127.0.0.1 (port 0 the first time, the same port after a
 * restart). Requests may carry a Content-Length body (not chunked). Every answer has
 * `x-backend: <name>` and a Content-Length, and keeps the connection alive unless the request
 * said `connection: close`.
 */
export function startStubHttp(
  name: string,
  handler: (req: StubRequest) => StubReply | Promise<StubReply> = (req) => taggedOk(name, req),
): StubHttpServer {
  const requests: StubRequest[] = [];
  const server = restartable(name, async (conn, stopped) => {
    const buf = new Uint8Array(16 * 1024);
    let data = new Uint8Array(0);
    const more = async (): Promise<boolean> => {
      const n = await conn.read(buf);
      if (n === null) return false;
      const next = new Uint8Array(data.length + n);
      next.set(data);
      next.set(buf.subarray(0, n), data.length);
      data = next;
      return true;
    };
    for (;;) {
      let end = findHeadEnd(data);
      while (end < 0) {
        if (!await more()) return;
        end = findHeadEnd(data);
      }
      const lines = decoder.decode(data.subarray(0, end)).split("\r\n");
      const [method, path] = lines[0].split(" ");
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue;
        const key = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
      }
      const length = Number(headers["content-length"] ?? "0");
      const start = end + 4;
      while (data.length < start + length) {
        if (!await more()) return;
      }
      const body = decoder.decode(data.subarray(start, start + length));
      data = data.slice(start + length);
      const req: StubRequest = { method, path, headers, body, at: performance.now() };
      requests.push(req);
      const reply = await handler(req);
      if (reply === "close") return;
      if (reply === "hang") {
        await stopped;
        return;
      }
      const text = reply.body ?? "";
      const close = /close/i.test(headers["connection"] ?? "");
      let head = `HTTP/1.1 ${reply.status} Stub\r\nx-backend: ${name}\r\n` +
        `content-length: ${encoder.encode(text).length}\r\n`;
      for (const [k, v] of Object.entries(reply.headers ?? {})) head += `${k}: ${v}\r\n`;
      if (close) head += "connection: close\r\n";
      await writeAll(conn, encoder.encode(`${head}\r\n${method === "HEAD" ? "" : text}`));
      if (close) return;
    }
  });
  return Object.assign(server, { requests }) as StubHttpServer;
}

function findHeadEnd(data: Uint8Array): number {
  for (let i = 0; i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
