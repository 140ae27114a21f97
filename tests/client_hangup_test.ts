/**
 * A client that hangs up while its requests wait on a slow backend must not count against that
 * backend: if a request cut short by its own client were taken for the server's fault, a few
 * requests sent and abandoned by one client would take a healthy server out of rotation (passive
 * health) for every other client. Checked over HTTP/1.1 and HTTP/2, through a real slow backend,
 * with curl and h2load as the clients. The case where edgemux closes the upstream connection
 * under a waiting request is pinned in proxy/http/exchange_test.ts.
 */

import { equal, ok } from "node:assert/strict";
import { serveTcp } from "./_helpers/backends.ts";
import { EDGE_CERTIFICATES } from "./_helpers/certs.ts";
import { curlHttps } from "./_helpers/curl.ts";
import { startEdgemux } from "./_helpers/edgemux.ts";
import { run } from "./_helpers/process.ts";
import { requireTool } from "./_helpers/tools.ts";

const NAME = "app.example.test";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An HTTP/1.1 backend: `/slow` answers after 1.5 s, anything else at once; keep-alive. */
function startSlowBackend() {
  return serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    const buf = new Uint8Array(16 * 1024);
    let text = "";
    for (;;) {
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        const n = await conn.read(buf);
        if (n === null) return;
        text += decoder.decode(buf.subarray(0, n));
        continue;
      }
      const path = text.slice(0, text.indexOf("\r\n")).split(" ")[1] ?? "/";
      text = text.slice(end + 4);
      if (path.startsWith("/slow")) await new Promise((r) => setTimeout(r, 1500));
      const body = `answer ${path}\n`;
      await conn.write(encoder.encode(
        `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\n\r\n${body}`,
      ));
    }
  });
}

Deno.test("clients that hang up on slow requests do not take the backend down for others", async (t) => {
  await using backend = startSlowBackend();
  await using edgemux = await startEdgemux(`
version: 1
${EDGE_CERTIFICATES}
backends:
  app:
    servers: ["127.0.0.1:${backend.port}"]
    retries: 2
    passive_health: { failures: 2, backoff: 60s }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: app, sni: "${NAME}", edge: app }
`);
  const port = edgemux.port("https");

  await t.step(
    "HTTP/2: a client ends its run with 40 streams in flight, then another is served",
    async () => {
      const h2load = requireTool("h2load", "nghttp2-client");
      // A timed run (-D) ends with every stream still waiting on /slow: h2load closes its
      // connections with 40 requests in flight.
      const load = await run(h2load, [
        "-t1",
        "-c2",
        "-m20",
        "-D1",
        `--connect-to=127.0.0.1:${port}`,
        `https://${NAME}:${port}/slow-h2load`,
      ], { timeoutMs: 30_000 });
      ok(load.stdout.includes("requests:"), load.stdout + load.stderr);
      // Give the abandoned exchanges time to fail, as they would before another client comes.
      await new Promise((r) => setTimeout(r, 2000));
      const r = await curlHttps(port, NAME, "/fast-after-h2load", "2");
      equal(r.status, 200, `the other client got ${r.status}: ${r.body}`);
    },
  );

  for (const version of ["1.1", "2"] as const) {
    await t.step(
      `HTTP/${version}: four abandoned GETs, then another client is served`,
      async () => {
        for (let i = 0; i < 4; i++) {
          const path = `/slow-${version}-${i}`;
          const r = await curlHttps(port, NAME, path, version, ["--max-time", "0.3"]);
          equal(r.code, 28, `curl should have timed out: ${r.errorMessage}`);
        }
        const r = await curlHttps(port, NAME, `/fast-${version}`, version);
        equal(r.status, 200, `the other client got ${r.status}: ${r.body}`);
        equal(r.body, `answer /fast-${version}\n`);
      },
    );
  }
});
