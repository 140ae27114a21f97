import { equal, ok } from "node:assert/strict";
import { parseBackendConfig } from "../_testing/backend_config.ts";
import { Backend } from "../backends/backend.ts";
import { DeadlineSet } from "../deadlines.ts";
import { closeQuietly } from "../net.ts";
import { exchange } from "./exchange.ts";
import { BackendPool, type UpstreamConn, UpstreamSet } from "./pool.ts";

const encoder = new TextEncoder();

Deno.test("exchange() does not count an upstream connection edgemux closed itself against the server", async () => {
  // A server that reads requests and never answers: the exchange waits on its response head.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      accepted.push(conn);
      conn.read(new Uint8Array(4096)).catch(() => {});
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  const config = parseBackendConfig(
    `servers: ["127.0.0.1:${port}"]\nretries: 2\npassive_health: { failures: 1, backoff: 60s }`,
    "exchange_test.yaml",
  );
  const backend = new Backend(config);
  const pool = new BackendPool(backend, null, new DeadlineSet());
  const upstreams = new UpstreamSet(4);
  try {
    for (let round = 0; round < 3; round++) {
      let used: UpstreamConn | null = null;
      const answer = exchange(pool, upstreams, {
        method: "GET",
        head: encoder.encode(`GET /r${round} HTTP/1.1\r\nhost: x\r\n\r\n`),
        body: { kind: "none" },
        retriable: true,
        upgrade: false,
        onConnection: (up) => used = up,
      }, new AbortController().signal);
      // The client's connection ends: its session closes the upstream connection in use.
      while (used === null) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      closeQuietly((used as UpstreamConn).conn);
      const result = await answer;
      ok(!result.ok, "no answer was expected");
      equal(result.end, "client-closed", result.detail);
      equal(backend.servers[0].failures, 0, "a local close counted as the server's failure");
      ok(backend.servers[0].up(Date.now()), "the server was taken down");
    }
    equal(accepted.length, 3, "a request cut by edgemux was sent again");
  } finally {
    upstreams.close();
    listener.close();
    for (const c of accepted) closeQuietly(c);
    await serving;
  }
});
