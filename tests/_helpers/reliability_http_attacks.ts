/**
 * Scenario 5, hostile HTTP/1.1 over a TLS `edge` route: request smuggling (Content-Length with
 * Transfer-Encoding, obfuscated and repeated Transfer-Encoding, conflicting Content-Length),
 * header floods and oversized heads, an absolute-form target that disagrees with Host, a missing
 * Host, forged forwarding headers, and requests hidden in bodies.
 *
 * The backend is a raw TCP server that keeps the exact bytes of every request it receives. For
 * each input the test asserts the client's status and the exact bytes upstream: either nothing
 * at all, or precisely the unambiguous request(s) edgemux is expected to write. After each input
 * a sentinel request on a fresh connection flushes the pool, so bytes that would arrive late
 * still land in the right case.
 *
 * tests/edge_timeouts_test.ts already checks CL.TE, TE.CL and CL.CL with a Deno.serve backend
 * and 408/431 with curl; this scenario adds the byte-exact view and the obfuscated variants.
 *
 * @module
 */

import { serveTcp } from "./backends.ts";
import { EDGE_CERTIFICATES, readCert } from "./certs.ts";
import { startHostedEdgemux } from "./edgemux_process.ts";
import {
  baseline,
  checkSettled,
  closeQuietly,
  Findings,
  readUntilClose,
  type ScenarioResult,
  sleep,
  writeAll,
} from "./reliability_kit.ts";
import { connectTlsByName } from "./websocket.ts";

/** Sizes of one run. */
export interface HttpAttackSizes {
  /** Every input is sent this many times (each time on a fresh connection). */
  repeat: number;
}

export const SHORT: HttpAttackSizes = { repeat: 1 };
export const FULL: HttpAttackSizes = { repeat: 5 };

const HOST = "app.example.test";
/**
 * The backend's response_timeout: short, so that an input edgemux forwards but cannot finish
 * (a broken chunked body) ends in seconds rather than the default minute.
 */
const RESPONSE_TIMEOUT = 3000;
/** Every input must be answered (or closed) within this long. */
const ANSWER_WITHIN = 2000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What an input is about, for grouping in tests and the report. */
export type AttackGroup = "framing" | "size" | "host" | "forwarding" | "hidden";

/** One hostile input. */
export interface Attack {
  name: string;
  group: AttackGroup;
  /** What the client sends, as one write (latin1 text, or bytes). */
  send: string | Uint8Array;
  /** Acceptable statuses of the first response (0: the connection closed without one). */
  status: number[];
  /**
   * The exact requests the backend must receive, in order; `[]` for none. When `status` allows
   * both a refusal and a forward, `refused` gives the upstream bytes for the refusal.
   */
  upstream: string[];
  /** Upstream when the status is one of these (a refusal); default: none. */
  refusedStatuses?: number[];
  /** Another acceptable upstream, e.g. nothing instead of an incomplete request. */
  orUpstream?: string[];
}

/** The forwarding fields edgemux writes for a client at 127.0.0.1 over https. */
function forwarded(authority = HOST): string {
  return `x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: https\r\n` +
    `x-forwarded-host: ${authority}\r\nforwarded: for=127.0.0.1;proto=https;host="${authority}"\r\n` +
    `x-real-ip: 127.0.0.1\r\n`;
}

/**
 * The request edgemux writes upstream: request line, `host` from the authority, the client's
 * end-to-end fields (lowercased, in order), its own forwarding fields, then the framing field.
 */
export function upstream(
  method: string,
  path: string,
  opts: {
    fields?: string[];
    body?: string;
    framing?: "length" | "chunked";
    length?: number;
    authority?: string;
  } = {},
): string {
  const authority = opts.authority ?? HOST;
  let text = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n`;
  for (const f of opts.fields ?? []) text += `${f}\r\n`;
  text += forwarded(authority);
  if (opts.framing === "length") {
    text += `content-length: ${opts.length ?? opts.body?.length ?? 0}\r\n`;
  }
  if (opts.framing === "chunked") text += "transfer-encoding: chunked\r\n";
  return text + "\r\n" + (opts.body ?? "");
}

const HIDDEN = `GET /smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;

function groupOf(name: string): AttackGroup {
  if (/^(te|cl)-|^connection-names/.test(name)) return "framing";
  if (/header|request-line/.test(name)) return /^(bare-lf|nul)/.test(name) ? "hidden" : "size";
  if (/host|absolute/.test(name)) return "host";
  if (/forward/.test(name)) return "forwarding";
  return "hidden";
}

/** Every input, with what must come of it. */
export function attacks(): Attack[] {
  return inputs().map((a) => ({ ...a, group: groupOf(a.name) }));
}

function inputs(): Omit<Attack, "group">[] {
  const post = (name: string, fields: string, body: string, status: number[]) => ({
    name,
    send: `POST /${name} HTTP/1.1\r\nHost: ${HOST}\r\n${fields}Connection: close\r\n\r\n${body}`,
    status,
    upstream: [],
  });
  const chunkedBody = "5\r\nhello\r\n0\r\n\r\n";
  const forwardedChunked = (name: string) =>
    upstream("POST", `/${name}`, { framing: "chunked", body: chunkedBody });
  const hiddenChunk = `${HIDDEN.length.toString(16)}\r\n${HIDDEN}\r\n0\r\n\r\n`;
  const manyHeaders = Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
  const bigHeader = `X-Big: ${"b".repeat(1024 * 1024)}\r\n`;
  const mediumHeaders = Array.from({ length: 20 }, (_, i) => `X-M${i}: ${"m".repeat(2000)}\r\n`)
    .join("");
  return [
    // Content-Length and Transfer-Encoding together (RFC 9112 §6.1: reject or drop CL; edgemux
    // rejects).
    post("cl-te", "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nG", [400]),
    post("te-cl", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "5c\r\nGPOST", [400]),
    post("te-cl-zero", "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", chunkedBody, [400]),
    // Obfuscated Transfer-Encoding.
    post("te-xchunked", "Transfer-Encoding: xchunked\r\n", chunkedBody, [400, 501]),
    post("te-vtab", "Transfer-Encoding: chunked\x0b\r\n", chunkedBody, [400]),
    post("te-space-before-colon", "Transfer-Encoding : chunked\r\n", chunkedBody, [400]),
    post("te-obs-fold", "X-A: 1\r\n Transfer-Encoding: chunked\r\n", chunkedBody, [400]),
    post("te-folded-value", "Transfer-Encoding:\r\n chunked\r\n", chunkedBody, [400]),
    post(
      "te-twice",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
      chunkedBody,
      [400],
    ),
    post(
      "te-then-identity",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
      chunkedBody,
      [400],
    ),
    post("te-chunked-identity", "Transfer-Encoding: chunked, identity\r\n", chunkedBody, [400]),
    post("te-chunked-chunked", "Transfer-Encoding: chunked, chunked\r\n", chunkedBody, [400]),
    post("te-empty-element", "Transfer-Encoding: , chunked\r\n", chunkedBody, [400]),
    post("te-nul", "Transfer-Encoding: chunk\x00ed\r\n", chunkedBody, [400]),
    {
      name: "te-http10",
      send: `POST /te-http10 HTTP/1.0\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        chunkedBody,
      status: [400],
      upstream: [],
    },
    // Legal spellings of chunked: forwarded, with the framing written afresh.
    {
      ...post("te-extra-space", "Transfer-Encoding:   chunked  \r\n", chunkedBody, [200]),
      upstream: [forwardedChunked("te-extra-space")],
    },
    {
      ...post("te-uppercase", "Transfer-Encoding: CHUNKED\r\n", chunkedBody, [200]),
      upstream: [forwardedChunked("te-uppercase")],
    },
    // Content-Length.
    post("cl-differ", "Content-Length: 3\r\nContent-Length: 5\r\n", "abcde", [400]),
    post("cl-list-differ", "Content-Length: 5, 6\r\n", "abcdef", [400]),
    post("cl-plus", "Content-Length: +5\r\n", "abcde", [400]),
    post("cl-hex", "Content-Length: 0x5\r\n", "abcde", [400]),
    post("cl-space-inside", "Content-Length: 5 5\r\n", "abcde", [400]),
    post("cl-negative", "Content-Length: -1\r\n", "", [400]),
    post("cl-huge", "Content-Length: 99999999999999999999\r\n", "", [400]),
    {
      ...post("cl-same-twice", "Content-Length: 5\r\nContent-Length: 5\r\n", "abcde", [200]),
      upstream: [upstream("POST", "/cl-same-twice", { framing: "length", body: "abcde" })],
    },
    {
      ...post("cl-same-list", "Content-Length: 5, 5\r\n", "abcde", [200]),
      upstream: [upstream("POST", "/cl-same-list", { framing: "length", body: "abcde" })],
    },
    {
      // Naming framing fields in Connection must not drop them (they are protected).
      ...post(
        "connection-names-cl",
        "Connection: content-length, transfer-encoding, host\r\nContent-Length: 5\r\n",
        "abcde",
        [200],
      ),
      upstream: [upstream("POST", "/connection-names-cl", { framing: "length", body: "abcde" })],
    },
    // Floods and oversized heads: refused before anything goes upstream.
    {
      name: "1000-headers",
      send: `GET /flood HTTP/1.1\r\nHost: ${HOST}\r\n${manyHeaders}\r\n`,
      status: [431],
      upstream: [],
    },
    {
      name: "1-mib-header",
      send: `GET /big HTTP/1.1\r\nHost: ${HOST}\r\n${bigHeader}\r\n`,
      status: [431, 0],
      upstream: [],
    },
    {
      name: "40-kib-of-headers",
      send: `GET /medium HTTP/1.1\r\nHost: ${HOST}\r\n${mediumHeaders}\r\n`,
      status: [431],
      upstream: [],
    },
    {
      name: "40-kib-request-line",
      send: `GET /${"a".repeat(40_000)} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
      status: [414],
      upstream: [],
    },
    // Host and the request target.
    {
      name: "absolute-form-vs-host",
      send:
        `GET http://${HOST}/abs HTTP/1.1\r\nHost: evil.example.test\r\nConnection: close\r\n\r\n`,
      status: [200, 400],
      upstream: [upstream("GET", "/abs")],
      refusedStatuses: [400],
    },
    {
      name: "absolute-form-other-host",
      send: `GET http://evil.example.test/x HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
      status: [421, 400],
      upstream: [],
    },
    {
      name: "absolute-form-userinfo",
      send: `GET http://user@${HOST}/x HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
      status: [400],
      upstream: [],
    },
    {
      name: "no-host-http11",
      send: "GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n",
      status: [400],
      upstream: [],
    },
    {
      name: "no-host-http10",
      send: "GET /nohost10 HTTP/1.0\r\n\r\n",
      status: [400],
      upstream: [],
    },
    {
      name: "two-hosts",
      send: `GET /twohosts HTTP/1.1\r\nHost: ${HOST}\r\nHost: evil.example.test\r\n\r\n`,
      status: [400],
      upstream: [],
    },
    {
      name: "empty-host-http11",
      send: "GET /emptyhost HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
      status: [400],
      upstream: [],
    },
    // Forwarding fields from an untrusted client: replaced, never passed on or appended to.
    {
      name: "forged-forwarding",
      send: `GET /xff HTTP/1.1\r\nHost: ${HOST}\r\nX-Forwarded-For: 1.2.3.4\r\n` +
        `x-forwarded-for: 5.6.7.8\r\nForwarded: for=1.2.3.4;proto=https\r\n` +
        `X-Forwarded-Host: evil.example.test\r\nX-Forwarded-Proto: http\r\n` +
        `Connection: close\r\n\r\n`,
      status: [200],
      upstream: [upstream("GET", "/xff")],
    },
    {
      name: "forwarding-named-in-connection",
      send: `GET /xff2 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close, x-forwarded-for\r\n` +
        `X-Forwarded-For: 1.2.3.4\r\n\r\n`,
      status: [200],
      upstream: [upstream("GET", "/xff2")],
    },
    // Requests hidden in bodies stay bodies; bytes after a body are the next request.
    {
      name: "request-in-chunked-body",
      send: `POST /chunked-hidden HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n` +
        `Connection: close\r\n\r\n${hiddenChunk}`,
      status: [200],
      upstream: [upstream("POST", "/chunked-hidden", { framing: "chunked", body: hiddenChunk })],
    },
    {
      name: "request-in-get-body",
      send: `GET /get-body HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${HIDDEN.length}\r\n` +
        `Connection: close\r\n\r\n${HIDDEN}`,
      status: [200, 400],
      upstream: [upstream("GET", "/get-body", { framing: "length", body: HIDDEN })],
      refusedStatuses: [400],
    },
    {
      name: "pipelined-after-body",
      send: `POST /first HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nabcde` +
        `GET /second HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
      status: [200],
      upstream: [
        upstream("POST", "/first", { framing: "length", body: "abcde" }),
        upstream("GET", "/second"),
      ],
    },
    // A broken chunked body: the head has gone upstream already (bodies are streamed), so the
    // backend may see that head and nothing more, then a close; the client's fault is a 400.
    {
      name: "bad-chunk-size",
      send: `POST /bad-chunk HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n` +
        `Connection: close\r\n\r\nfffffffffffffffffff1\r\nhello\r\n0\r\n\r\n${HIDDEN}`,
      status: [400, 0],
      upstream: [upstream("POST", "/bad-chunk", { framing: "chunked" })],
      orUpstream: [],
    },
    {
      name: "chunk-size-bare-lf",
      send: `POST /bare-lf HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n` +
        `Connection: close\r\n\r\n5\nhello\r\n0\r\n\r\n${HIDDEN}`,
      status: [400, 0],
      upstream: [upstream("POST", "/bare-lf", { framing: "chunked" })],
      orUpstream: [],
    },
    {
      name: "chunk-data-longer-than-size",
      send: `POST /long-chunk HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n` +
        `Connection: close\r\n\r\n5\r\nhelloGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n`,
      status: [400, 0],
      upstream: [upstream("POST", "/long-chunk", { framing: "chunked" })],
      orUpstream: [],
    },
    {
      name: "bare-lf-in-head",
      send: `GET /lf HTTP/1.1\nHost: ${HOST}\n\n`,
      status: [400],
      upstream: [],
    },
    {
      name: "nul-in-header",
      send: `GET /nul HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x00b\r\n\r\n`,
      status: [400],
      upstream: [],
    },
  ];
}

/** One request as the backend received it. */
interface Received {
  conn: number;
  text: string;
}

/**
 * A raw HTTP/1.1 backend that frames requests itself (Content-Length or chunked, the only
 * framings edgemux writes), keeps each request's exact bytes, answers `200 ok` and keeps the
 * connection. Bytes it cannot frame are kept too, as a request of their own, and the connection
 * is closed: those are what an ambiguous request would leave behind.
 */
function startRecordingBackend(): AsyncDisposable & {
  port: number;
  received: Received[];
  connections: () => number;
} {
  const received: Received[] = [];
  let count = 0;
  const reply = encoder.encode("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
  const serve = async (conn: Deno.Conn, id: number) => {
    let buf = "";
    const chunk = new Uint8Array(64 * 1024);
    const more = async () => {
      const n = await conn.read(chunk);
      if (n === null) return false;
      // latin1, so that byte counts and string lengths agree.
      for (let i = 0; i < n; i++) buf += String.fromCharCode(chunk[i]);
      return true;
    };
    try {
      for (;;) {
        while (!buf.includes("\r\n\r\n")) {
          if (!await more()) {
            if (buf) received.push({ conn: id, text: buf });
            return;
          }
        }
        const headEnd = buf.indexOf("\r\n\r\n") + 4;
        const head = buf.slice(0, headEnd).toLowerCase();
        const length = /\r\ncontent-length: (\d+)\r\n/.exec(head);
        let end = headEnd;
        if (length) {
          end = headEnd + Number(length[1]);
          while (buf.length < end) if (!await more()) break;
        } else if (head.includes("\r\ntransfer-encoding: chunked\r\n")) {
          // Chunk sizes, each chunk, then the last chunk and the (empty) trailer section.
          let at = headEnd;
          for (;;) {
            while (buf.indexOf("\r\n", at) < 0) if (!await more()) break;
            const lineEnd = buf.indexOf("\r\n", at);
            if (lineEnd < 0) break;
            const size = parseInt(buf.slice(at, lineEnd), 16);
            if (Number.isNaN(size)) break;
            if (size === 0) {
              while (buf.indexOf("\r\n", lineEnd + 2) < 0) if (!await more()) break;
              at = buf.indexOf("\r\n", lineEnd + 2) + 2;
              break;
            }
            at = lineEnd + 2 + size + 2;
            while (buf.length < at) if (!await more()) break;
          }
          end = at;
        }
        if (end > buf.length) {
          received.push({ conn: id, text: buf });
          return;
        }
        received.push({ conn: id, text: buf.slice(0, end) });
        buf = buf.slice(end);
        await writeAll(conn, reply);
      }
    } catch {
      if (buf) received.push({ conn: id, text: buf });
    }
  };
  const server = serveTcp(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    (conn) => serve(conn, ++count),
  );
  return {
    port: server.port,
    received,
    connections: () => count,
    [Symbol.asyncDispose]: server.close,
  };
}

function toBytes(send: string | Uint8Array): Uint8Array {
  if (typeof send !== "string") return send;
  const out = new Uint8Array(send.length);
  for (let i = 0; i < send.length; i++) out[i] = send.charCodeAt(i) & 0xff;
  return out;
}

function show(text: string, max = 300): string {
  const s = JSON.stringify(text);
  return s.length > max ? `${s.slice(0, max)}…(${text.length} bytes)` : s;
}

/** Runs the scenario; never throws for a failed expectation (see `problems`). */
export async function runHttpAttacks(sizes: HttpAttackSizes): Promise<ScenarioResult> {
  const f = new Findings("HTTP attacks");
  await using backend = startRecordingBackend();
  await using host = await startHostedEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  app: { servers: ["127.0.0.1:${backend.port}"], response_timeout: ${RESPONSE_TIMEOUT}ms }
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { name: app, sni: ${HOST}, edge: app }
`);
  const port = host.port("tls");
  const send = async (
    bytes: Uint8Array,
  ): Promise<{ status: number; text: string; ms: number }> => {
    const { conn } = await connectTlsByName({ port, serverName: HOST, caCerts: [readCert("ca")] });
    try {
      // Written in the background: a refusal may come (and the connection close) before a
      // large input is all written.
      const started = performance.now();
      const writing = writeAll(conn, bytes).catch(() => {});
      const c = await readUntilClose(conn, RESPONSE_TIMEOUT + 5000, 64 * 1024);
      await writing;
      const text = decoder.decode(c.bytes);
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      return {
        status: m ? Number(m[1]) : 0,
        text: c.how === "timeout" ? `(no close) ${text}` : text,
        ms: c.at - started,
      };
    } finally {
      closeQuietly(conn);
    }
  };
  let sentinel = 0;
  const flush = async (): Promise<string | null> => {
    const path = `/sentinel-${++sentinel}`;
    const r = await send(
      toBytes(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`),
    );
    // Bytes an attack left on another pooled connection arrive within a moment, if at all.
    await sleep(20);
    return r.status === 200 ? path : null;
  };
  await flush();
  backend.received.length = 0;
  const base = await baseline(host);

  const list = attacks();
  let inputs = 0;
  let refused = 0;
  let forwarded = 0;
  for (let round = 0; round < sizes.repeat; round++) {
    for (const attack of list) {
      inputs++;
      const r = await send(toBytes(attack.send));
      const path = await flush();
      const got = backend.received.splice(0).filter((x) => !x.text.startsWith(`GET ${path} `));
      f.check(path !== null, `${attack.name}: the sentinel request after it failed`);
      const statusOk = attack.status.includes(r.status);
      f.check(
        r.ms <= ANSWER_WITHIN,
        `${attack.name}: answered and closed after ${Math.round(r.ms)} ms (limit ${ANSWER_WITHIN})`,
      );
      f.check(
        statusOk,
        `${attack.name}: status ${r.status}, expected ${attack.status.join(" or ")}; the client ` +
          `got ${show(r.text, 200)}`,
      );
      const wasRefused = attack.upstream.length === 0 ||
        (attack.refusedStatuses ?? []).includes(r.status);
      const expected = wasRefused ? [] : attack.upstream;
      if (wasRefused) refused++;
      else forwarded++;
      const matches = (want: string[]) =>
        got.length === want.length && got.every((x, i) => x.text === want[i]);
      const same = matches(expected) ||
        (attack.orUpstream !== undefined && matches(attack.orUpstream));
      f.check(
        same,
        `${attack.name}: the backend received ${got.length} request(s):\n` +
          got.map((x) => `  ${show(x.text)}`).join("\n") +
          `\nexpected ${expected.length}:\n` + expected.map((x) => `  ${show(x)}`).join("\n"),
      );
      f.check(
        !got.some((x) => x.text.includes("/smuggled") && !expected.some((e) => e === x.text)),
        `${attack.name}: a hidden request reached the backend as a request of its own`,
      );
    }
  }
  const settled = await checkSettled(f, host, base, 10_000);
  const end = await host.stats(true);
  f.hostHealth(host, end);
  f.figure("distinct inputs", list.length);
  f.figure("inputs sent", inputs);
  f.figure("refused (nothing upstream)", refused);
  f.figure("forwarded (upstream bytes checked exactly)", forwarded);
  f.figure("backend connections", backend.connections());
  f.figure("edgemux fds: baseline → after", `${base.fds} → ${settled.stats.fds}`);
  return f.result();
}
