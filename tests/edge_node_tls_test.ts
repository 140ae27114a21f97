/**
 * The terminated end-to-end tests again, on the termination path that is not the default:
 * `node:tls` on the client's own socket for clients that do not offer h2 (proxy/tls/terminate.ts,
 * proxy/tls/node_tls.ts). The imported files register their tests; the switch below applies to
 * every connection in this isolate, before any test runs. HTTP/2 clients still take the internal
 * listener, and the last test checks that each kind of client took the path it should.
 */

import "./edge_http_test.ts";
import "./reencrypt_test.ts";
import "./edge_websocket_test.ts";
import "./edge_timeouts_test.ts";
import "./stalled_clients_test.ts";
import "./shutdown_test.ts";
import "./reload_test.ts";
import { equal } from "node:assert/strict";
import { terminatedBy, useTerminationPath } from "../proxy/tls/terminate.ts";
import { startHttpBackend } from "./_helpers/backends.ts";
import { certPath } from "./_helpers/certs.ts";
import { curl } from "./_helpers/curl.ts";
import { startSingleEdge } from "./_helpers/edgemux.ts";

useTerminationPath("node");

Deno.test("with the node path, HTTP/1.1 clients end TLS on their socket and h2 clients take the hop", async () => {
  await using backend = await startHttpBackend("app");
  await using edgemux = await startSingleEdge(backend.port, {
    name: "app",
    sni: "app.example.test",
  });
  const port = edgemux.port("https");
  const ask = async (version: "--http1.1" | "--http2") => {
    const r = await curl([
      version,
      "--cacert",
      certPath("ca"),
      "--resolve",
      `app.example.test:${port}:127.0.0.1`,
      `https://app.example.test:${port}/which`,
    ]);
    equal(r.status, 200, r.stderr);
    return r.httpVersion;
  };
  const before = { ...terminatedBy };
  equal(await ask("--http1.1"), "1.1");
  equal(terminatedBy.node - before.node, 1);
  equal(terminatedBy.hop - before.hop, 0);
  equal(await ask("--http2"), "2");
  equal(terminatedBy.node - before.node, 1);
  equal(terminatedBy.hop - before.hop, 1);
  // The access record of the HTTP/1.1 connection says what a hop one would.
  const record = await edgemux.waitForRecord((r) => r.alpn.join() === "http/1.1", 5000);
  equal(record.sni, "app.example.test");
  equal(record.end, "client-closed");
});
