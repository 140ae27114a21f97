/**
 * An HTTP/1.1 backend that misframes its responses on purpose, for the tests that prove one
 * client never receives bytes meant for another.
 *
 * Each request chooses how it is answered by its path, `/lie/<shape>`; the response body is
 * `client=<x-client header>;shape=<shape>;n=<count>`, so whoever receives it can tell whose
 * request it answers. Every extra byte a shape adds is itself a well-formed response tagged
 * with the same client, the most dangerous thing a lying server can send: if a proxy hands it
 * to the next request on the connection, that request's client sees it as its own answer.
 *
 * @module
 */

import { serveTcp, type TcpServer } from "./backends.ts";

/** The ways the backend answers, chosen by the request path `/lie/<shape>`. */
export const LIE_SHAPES = [
  /** A correct answer. */
  "honest",
  /** A correct answer, then a second whole response 30 ms later. */
  "late-second",
  /** A correct answer with a second whole response in the same write. */
  "extra",
  /** Content-Length shorter than the bytes sent: the rest is a whole response. */
  "short-length",
  /** A chunked answer with a whole response after its last chunk. */
  "chunked-extra",
  /** `204 No Content`, then a "body" 30 ms later that is a whole response. */
  "204-late-body",
  /** `304 Not Modified` with a Content-Length, then that many bytes 30 ms later. */
  "304-late-body",
  /** For HEAD: the head with a Content-Length, then a body 30 ms later (a whole response). */
  "head-late-body",
  /** `101 Switching Protocols` to a request that asked for no upgrade, then a response. */
  "unsolicited-101",
  /**
   * The request body is never read, so the server takes it for the next request (Python's
   * `http.server` does this with a GET's body). A client that puts a request in that body gets
   * two answers to one request.
   */
  "ignore-body",
] as const;

/** One of {@link LIE_SHAPES}. */
export type LieShape = typeof LIE_SHAPES[number];

/** A running lying backend. */
export interface LyingBackend extends AsyncDisposable {
  port: number;
  /** Requests parsed so far (a smuggled one counts too). */
  readonly requests: number;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LATE_MS = 30;

/** The response body for a request of `client` answered with `shape`. */
export function lieBody(client: string, shape: string, n: number): string {
  return `client=${client};shape=${shape};n=${n}`;
}

function response(status: string, body: string, extra = ""): string {
  return `HTTP/1.1 ${status}\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;
}

/** Starts the backend on 127.0.0.1, port chosen by the system. */
export function startLyingBackend(): LyingBackend {
  let count = 0;
  const server: TcpServer = serveTcp(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (conn) => {
      let buf = new Uint8Array(0);
      const more = async (): Promise<boolean> => {
        const chunk = new Uint8Array(16 * 1024);
        const n = await conn.read(chunk);
        if (n === null) return false;
        const next = new Uint8Array(buf.length + n);
        next.set(buf);
        next.set(chunk.subarray(0, n), buf.length);
        buf = next;
        return true;
      };
      const take = (n: number): Uint8Array => {
        const out = buf.slice(0, n);
        buf = buf.slice(n);
        return out;
      };
      const write = async (text: string) => {
        const data = encoder.encode(text);
        let o = 0;
        while (o < data.length) o += await conn.write(data.subarray(o));
      };
      const later = (text: string) =>
        new Promise<void>((resolve) =>
          setTimeout(() => write(text).catch(() => {}).finally(resolve), LATE_MS)
        );
      for (;;) {
        let end: number;
        while ((end = indexOfHeadEnd(buf)) < 0) if (!await more()) return;
        const head = decoder.decode(take(end + 4));
        const [requestLine, ...lines] = head.split("\r\n");
        const [method, path = "/"] = requestLine.split(" ");
        const fields = new Map<string, string>();
        for (const line of lines) {
          const colon = line.indexOf(":");
          if (colon > 0) {
            fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
          }
        }
        const shape = (path.startsWith("/lie/") ? path.slice(5).split("?")[0] : "honest") as
          | LieShape
          | string;
        const client = fields.get("x-client") ?? "-";
        const n = ++count;
        if (shape !== "ignore-body") {
          const length = Number(fields.get("content-length") ?? "0");
          if (fields.get("transfer-encoding")?.toLowerCase() === "chunked") {
            // Enough for the tests' own chunked bodies: read up to the last chunk.
            let at: number;
            while ((at = indexOf(buf, "\r\n0\r\n\r\n")) < 0 && !startsWithLast(buf)) {
              if (!await more()) return;
            }
            take(startsWithLast(buf) ? 5 : at + 7);
          } else {
            while (buf.length < length) if (!await more()) return;
            take(length);
          }
        }
        const body = lieBody(client, shape, n);
        const second = response("200 OK", lieBody(client, `${shape}-smuggled`, n));
        switch (shape) {
          case "late-second":
            await write(response("200 OK", body));
            await later(second);
            break;
          case "extra":
            await write(response("200 OK", body) + second);
            break;
          case "short-length":
            await write(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n${body}${second}`);
            break;
          case "chunked-extra":
            await write(
              `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n` +
                `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${second}`,
            );
            break;
          case "204-late-body":
            await write("HTTP/1.1 204 No Content\r\n\r\n");
            await later(second);
            break;
          case "304-late-body":
            await write(`HTTP/1.1 304 Not Modified\r\ncontent-length: ${second.length}\r\n\r\n`);
            await later(second);
            break;
          case "head-late-body":
            if (method === "HEAD") {
              await write(`HTTP/1.1 200 OK\r\ncontent-length: ${second.length}\r\n\r\n`);
              await later(second);
            } else {
              await write(response("200 OK", body));
            }
            break;
          case "unsolicited-101":
            await write("HTTP/1.1 101 Switching Protocols\r\n\r\n" + second);
            break;
          default:
            await write(response("200 OK", body));
        }
      }
    },
  );
  return {
    port: server.port,
    get requests() {
      return count;
    },
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  };
}

function startsWithLast(buf: Uint8Array): boolean {
  return buf.length >= 5 && decoder.decode(buf.subarray(0, 5)) === "0\r\n\r\n";
}

function indexOfHeadEnd(buf: Uint8Array): number {
  return indexOf(buf, "\r\n\r\n");
}

function indexOf(buf: Uint8Array, text: string): number {
  const needle = encoder.encode(text);
  outer: for (let i = 0; i + needle.length <= buf.length; i++) {
    for (let j = 0; j < needle.length; j++) if (buf[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
