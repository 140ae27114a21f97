/**
 * The HTTP limits of terminated connections, seen from real clients: request head and keep-alive
 * timeouts, backends that never answer or are gone, heads that are too large or carry too many
 * fields, and request smuggling. Every status edgemux writes itself has a short plain body with
 * no internal detail.
 */

import { equal, match, ok } from "node:assert/strict";
import { serveTcp, startHttpBackend, type TcpServer } from "./_helpers/backends.ts";
import { EDGE_CERTIFICATES, readCert } from "./_helpers/certs.ts";
import { curlHttps } from "./_helpers/curl.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import {
  connectTlsByName,
  ConnReader,
  parseResponseHead,
  type ResponseHead,
  writeFully,
} from "./_helpers/websocket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEAD_TIMEOUT = 500;
const KEEPALIVE_TIMEOUT = 400;
const RESPONSE_TIMEOUT = 300;
/** Timers fire late on a busy 2-core machine. */
const LATE_BY = 400;
/**
 * edgemux checks its read deadlines on one 100 ms tick against a clock read at the last tick
 * (proxy/deadlines.ts), so a timeout may end up to one tick before its configured time.
 */
const EARLY_BY = 110;

function note(what: string, ms: number): void {
  console.log(`    ${what}: ${Math.round(ms)} ms`);
}

/** A port that refuses connections: bound, then closed. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * A TCP backend that accepts and then, per `mode`, never answers (reads and discards) or closes
 * as soon as a request head has arrived.
 */
function startSilentBackend(mode: "hang" | "close"): TcpServer {
  return serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    const reader = new ConnReader(conn);
    if (mode === "close") await reader.readUntil("\r\n\r\n", 5000);
    else await reader.readToEnd(30_000);
  });
}

interface Setup {
  edgemux: TestProxy;
  app: Awaited<ReturnType<typeof startHttpBackend>>;
  port: number;
}

async function startProxy(
  backends: { app: number; hang: number; dead: number; closer: number },
): Promise<TestProxy> {
  return await startEdgemux(`
version: 1
http:
  request_head_timeout: ${HEAD_TIMEOUT}ms
  keepalive_timeout: ${KEEPALIVE_TIMEOUT}ms
  max_head_size: 2KiB
  max_headers: 8
${EDGE_CERTIFICATES}
backends:
  app: { servers: ["127.0.0.1:${backends.app}"] }
  hang: { servers: ["127.0.0.1:${backends.hang}"], response_timeout: ${RESPONSE_TIMEOUT}ms }
  dead: { servers: ["127.0.0.1:${backends.dead}"], connect_timeout: 2s }
  closer: { servers: ["127.0.0.1:${backends.closer}"] }
  closer-then-app: { servers: ["127.0.0.1:${backends.closer}", "127.0.0.1:${backends.app}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: app, sni: app.example.test, edge: app }
      - { name: hang, sni: hang.example.test, edge: hang }
      - { name: dead, sni: dead.example.test, edge: dead }
      - { name: closer, sni: closer.example.test, edge: closer }
      - { name: failover, sni: failover.example.test, edge: closer-then-app }
`);
}

/** One raw HTTP/1.1 connection over TLS to `name`. */
async function open(port: number, name: string) {
  const { conn } = await connectTlsByName({ port, serverName: name, caCerts: [readCert("ca")] });
  return { conn, reader: new ConnReader(conn) };
}

/** Reads one response with a Content-Length body. */
async function readResponse(
  reader: ConnReader,
  timeoutMs = 5000,
): Promise<{ head: ResponseHead; body: string }> {
  const headBytes = await reader.readUntil("\r\n\r\n", timeoutMs);
  if (headBytes === null) throw new Error("the connection closed before a response");
  const head = parseResponseHead(headBytes);
  const length = Number(head.headers["content-length"] ?? "0");
  const body = length > 0 ? decoder.decode(await reader.readExactly(length, timeoutMs)) : "";
  return { head, body };
}

/** Whether the peer closes within `timeoutMs`, and the bytes it sent first. */
async function waitForClose(reader: ConnReader, timeoutMs: number) {
  const data = await reader.readToEnd(timeoutMs);
  return { extra: decoder.decode(data), at: performance.now() };
}

/** edgemux's own answers are one short line naming the status: no stack, file or reason. */
function assertPlainBody(body: string, reason: string): void {
  equal(body, `${reason}\n`);
  for (const leak of [/\.ts\b/, /\bat \w/, /Error/, /\/work\//, /[{}]/]) {
    ok(!leak.test(body), `the body leaks ${leak}: ${JSON.stringify(body)}`);
  }
}

async function withProxy(fn: (s: Setup) => Promise<void>): Promise<void> {
  await using app = await startHttpBackend("app");
  await using hang = startSilentBackend("hang");
  await using closer = startSilentBackend("close");
  await using edgemux = await startProxy({
    app: app.port,
    hang: hang.port,
    closer: closer.port,
    dead: closedPort(),
  });
  await fn({ edgemux, app, port: edgemux.port("https") });
}

Deno.test("a request head not finished within request_head_timeout gets 408 and a close", async (t) => {
  await withProxy(async ({ port, app, edgemux }) => {
    await t.step("half a head, then silence: 408 at the deadline", async () => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        await writeFully(
          conn,
          encoder.encode("GET /half HTTP/1.1\r\nHost: app.example.test\r\nX-"),
        );
        const sent = performance.now();
        const { head, body } = await readResponse(reader, HEAD_TIMEOUT + LATE_BY + 1000);
        const answeredAfter = performance.now() - sent;
        note("408 after a half head", answeredAfter);
        equal(head.status, 408);
        equal(head.headers["connection"], "close");
        assertPlainBody(body, "Request Timeout");
        const closed = await waitForClose(reader, 1000);
        equal(closed.extra, "");
        ok(
          answeredAfter >= HEAD_TIMEOUT - EARLY_BY && answeredAfter < HEAD_TIMEOUT + LATE_BY,
          `answered after ${Math.round(answeredAfter)} ms`,
        );
        ok(closed.at - sent < HEAD_TIMEOUT + LATE_BY, "closed long after the 408");
      } finally {
        conn.close();
      }
      equal(app.requests.length, 0);
      const rec = edgemux.requests.find((r) => r.status === 408);
      equal(rec?.end, "request-timeout");
    });

    await t.step("a head trickled in small pieces is cut at the same deadline", async () => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        const sent = performance.now();
        // A piece every 100 ms would hold the connection forever if each piece reset the timer.
        const pieces = [
          "GET /slow",
          " HTTP/1.1\r\n",
          "Host: app",
          ".example.test\r\n",
          "X-A: 1\r\n",
        ];
        const trickle = (async () => {
          for (const piece of pieces.concat(Array(20).fill("X-More: 1\r\n"))) {
            try {
              await writeFully(conn, encoder.encode(piece));
            } catch {
              return;
            }
            await new Promise((r) => setTimeout(r, 100));
            if (reader.eof || performance.now() - sent > 2500) return;
          }
        })();
        const { head } = await readResponse(reader, HEAD_TIMEOUT + LATE_BY + 1000);
        const after = performance.now() - sent;
        equal(head.status, 408);
        ok(
          after < HEAD_TIMEOUT + LATE_BY,
          `the trickle held the head open for ${Math.round(after)} ms`,
        );
        await trickle;
      } finally {
        conn.close();
      }
    });

    await t.step("near miss: a head sent in pieces within the deadline is served", async () => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        for (const piece of ["GET /pieces HTTP/1.1\r\n", "Host: app.example.test\r\n", "\r\n"]) {
          await writeFully(conn, encoder.encode(piece));
          await new Promise((r) => setTimeout(r, 100));
        }
        const { head, body } = await readResponse(reader);
        equal(head.status, 200);
        equal(body, "backend app GET /pieces\n");
      } finally {
        conn.close();
      }
    });
  });
});

Deno.test("an idle keep-alive connection is closed at keepalive_timeout without a response", async (t) => {
  await withProxy(async ({ port }) => {
    await t.step("HTTP/1.1: closed about 400 ms after the last response, silently", async () => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        await writeFully(
          conn,
          encoder.encode("GET /one HTTP/1.1\r\nHost: app.example.test\r\n\r\n"),
        );
        equal((await readResponse(reader)).head.status, 200);
        // Near miss: a second request inside the idle window is served on the same connection.
        await new Promise((r) => setTimeout(r, KEEPALIVE_TIMEOUT / 2));
        await writeFully(
          conn,
          encoder.encode("GET /two HTTP/1.1\r\nHost: app.example.test\r\n\r\n"),
        );
        const second = await readResponse(reader);
        equal(second.head.status, 200);
        equal(second.body, "backend app GET /two\n");
        const idleFrom = performance.now();
        const closed = await waitForClose(reader, KEEPALIVE_TIMEOUT + LATE_BY + 1000);
        const idle = closed.at - idleFrom;
        note("HTTP/1.1 idle close after a response", idle);
        equal(closed.extra, "", "edgemux wrote something before closing an idle connection");
        ok(
          idle >= KEEPALIVE_TIMEOUT - EARLY_BY && idle < KEEPALIVE_TIMEOUT + LATE_BY,
          `closed after ${Math.round(idle)} ms idle`,
        );
      } finally {
        conn.close();
      }
    });

    await t.step(
      "HTTP/1.1: a connection that never sends a request is closed the same way",
      async () => {
        const { conn, reader } = await open(port, "app.example.test");
        try {
          const from = performance.now();
          const closed = await waitForClose(reader, KEEPALIVE_TIMEOUT + LATE_BY + 1000);
          equal(closed.extra, "");
          const idle = closed.at - from;
          ok(idle < KEEPALIVE_TIMEOUT + LATE_BY, `closed after ${Math.round(idle)} ms idle`);
        } finally {
          conn.close();
        }
      },
    );

    await t.step("HTTP/2: a connection without streams is closed after the idle time", async () => {
      const { conn } = await connectTlsByName({
        port,
        serverName: "app.example.test",
        caCerts: [readCert("ca")],
        alpn: ["h2"],
      });
      const reader = new ConnReader(conn);
      try {
        const from = performance.now();
        await writeFully(conn, encoder.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        await writeFully(conn, new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]));
        await waitForClose(reader, KEEPALIVE_TIMEOUT + LATE_BY + 1000);
        const idle = performance.now() - from;
        note("HTTP/2 idle close", idle);
        ok(
          idle >= KEEPALIVE_TIMEOUT - EARLY_BY && idle < KEEPALIVE_TIMEOUT + LATE_BY,
          `closed after ${Math.round(idle)} ms`,
        );
      } finally {
        conn.close();
      }
    });
  });
});

Deno.test("backend failures become 504 and 502 with plain bodies", async (t) => {
  await withProxy(async ({ port, edgemux }) => {
    for (const v of ["1.1", "2"] as const) {
      await t.step(
        `HTTP/${v}: a backend that never answers gives 504 at response_timeout`,
        async () => {
          const started = performance.now();
          const r = await curlHttps(port, "hang.example.test", `/hang-${v}`, v);
          const elapsed = performance.now() - started;
          note(`HTTP/${v} 504 (curl start to exit)`, elapsed);
          equal(r.status, 504);
          assertPlainBody(r.body, "Gateway Timeout");
          ok(
            elapsed >= RESPONSE_TIMEOUT - EARLY_BY && elapsed < RESPONSE_TIMEOUT + LATE_BY + 300,
            `answered after ${Math.round(elapsed)} ms`,
          );
          equal(
            (await edgemux.waitForRequest((x) => x.path === `/hang-${v}`)).end,
            "upstream-timeout",
          );
        },
      );

      await t.step(`HTTP/${v}: a backend on a closed port gives 502`, async () => {
        const r = await curlHttps(port, "dead.example.test", `/dead-${v}`, v);
        equal(r.status, 502);
        assertPlainBody(r.body, "Bad Gateway");
        const rec = await edgemux.waitForRequest((x) => x.path === `/dead-${v}`);
        equal(rec.end, "upstream-refused");
      });
    }

    await t.step("a backend that closes without answering gives 502 upstream-closed", async () => {
      const r = await curlHttps(port, "closer.example.test", "/closer", "1.1");
      const rec = await edgemux.waitForRequest((x) => x.path === "/closer");
      equal(r.status, 502, `request record: ${JSON.stringify(rec)}`);
      assertPlainBody(r.body, "Bad Gateway");
      equal(rec.end, "upstream-closed");
      equal(r.headers["retry-after"], undefined);
    });

    await t.step("near miss: with a second server the retry reaches it", async () => {
      const r = await curlHttps(port, "failover.example.test", "/failover", "1.1");
      equal(r.status, 200);
      equal(r.body, "backend app GET /failover\n");
    });
  });
});

Deno.test("request heads over max_head_size or max_headers get 431", async (t) => {
  await withProxy(async ({ port, app }) => {
    for (const v of ["1.1", "2"] as const) {
      await t.step(`HTTP/${v}: a 3000-byte header field (limit 2 KiB) gets 431`, async () => {
        const before = app.requests.length;
        const r = await curlHttps(port, "app.example.test", `/big-${v}`, v, [
          "-H",
          `X-Big: ${"b".repeat(3000)}`,
        ]);
        equal(r.status, 431);
        assertPlainBody(r.body, "Request Header Fields Too Large");
        equal(app.requests.length, before, "the request reached the backend");
        // Near miss: 1000 bytes fit.
        const fits = await curlHttps(port, "app.example.test", `/fits-${v}`, v, [
          "-H",
          `X-Big: ${"b".repeat(1000)}`,
        ]);
        equal(fits.status, 200);
      });

      await t.step(`HTTP/${v}: 12 header fields (limit 8) get 431`, async () => {
        const before = app.requests.length;
        const many = Array.from({ length: 9 }, (_, i) => ["-H", `X-Field-${i}: ${i}`]).flat();
        // curl adds Host, User-Agent and Accept: 12 fields in all.
        const r = await curlHttps(port, "app.example.test", `/many-${v}`, v, many);
        equal(r.status, 431);
        assertPlainBody(r.body, "Request Header Fields Too Large");
        equal(app.requests.length, before, "the request reached the backend");
        // Near miss: 3 + 5 = 8 fields are allowed.
        const fits = await curlHttps(port, "app.example.test", `/few-${v}`, v, many.slice(0, 10));
        equal(fits.status, 200);
      });
    }
  });
});

Deno.test("a request with both Content-Length and Transfer-Encoding gets 400 and never reaches the backend", async (t) => {
  await withProxy(async ({ port, app }) => {
    const smuggle = async (name: string, request: string) => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        await writeFully(conn, encoder.encode(request));
        const { head, body } = await readResponse(reader);
        equal(head.status, 400, `${name}: ${head.raw}`);
        equal(head.headers["connection"], "close");
        assertPlainBody(body, "Bad Request");
        equal((await waitForClose(reader, 2000)).extra, "", `${name}: bytes after the 400`);
      } finally {
        conn.close();
      }
    };

    await t.step("Content-Length with Transfer-Encoding: chunked", async () => {
      await smuggle(
        "CL.TE",
        "POST /smuggle HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 6\r\n" +
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
      );
    });

    await t.step("Transfer-Encoding first, then Content-Length", async () => {
      await smuggle(
        "TE.CL",
        "POST /smuggle2 HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n" +
          "Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
      );
    });

    await t.step("two different Content-Length values", async () => {
      await smuggle(
        "CL.CL",
        "POST /smuggle3 HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 3\r\n" +
          "Content-Length: 5\r\n\r\nabcde",
      );
    });

    equal(app.requests.length, 0, `reached the backend: ${app.requests.map((r) => r.path)}`);

    await t.step("near miss: a well-formed chunked POST is forwarded", async () => {
      const { conn, reader } = await open(port, "app.example.test");
      try {
        await writeFully(
          conn,
          encoder.encode(
            "POST /fine HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
              "5\r\nhello\r\n0\r\n\r\n",
          ),
        );
        const { head, body } = await readResponse(reader);
        equal(head.status, 200);
        equal(body, "backend app POST /fine\n");
      } finally {
        conn.close();
      }
      equal(app.requests.at(-1)?.body, "hello");
    });
  });
});

Deno.test("statuses edgemux writes over HTTP/2 carry the same plain bodies", async () => {
  await withProxy(async ({ port }) => {
    const r = await curlHttps(port, "app.example.test", "/x", "2", ["-H", "Host: elsewhere.test"]);
    equal(r.status, 421);
    assertPlainBody(r.body, "Misdirected Request");
    match(r.headers["content-type"] ?? "", /^text\/plain/);
  });
});
