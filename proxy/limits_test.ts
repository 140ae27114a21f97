/**
 * Unit tests of ConnectionLimiter: the caps checked when a connection is accepted (over all
 * listeners, per listener, per client address) and the per-client token bucket. Time is passed
 * in, so the rate tests need no waiting.
 */

import { deepEqual, equal } from "node:assert/strict";
import { parseConfig } from "../config/parse.ts";
import type { LimitsConfig } from "../config/types.ts";
import { clientKey, ConnectionLimiter, type LimitRefusal } from "./limits.ts";

/** The limits of a config whose `limits:` section is `body` (YAML, indented by the caller). */
function limitsConfig(body: string): LimitsConfig {
  const yaml = `version: 1
limits:
${body.trim().split("\n").map((line) => `  ${line}`).join("\n")}
backends:
  b: { servers: ["127.0.0.1:1"] }
listeners:
  tcp:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`;
  return parseConfig(yaml, "limits_test.yaml").config.limits;
}

/** Admits or throws, for connections a test expects to get in. */
function admitted(result: (() => void) | LimitRefusal): () => void {
  if (typeof result === "string") throw new Error(`refused: ${result}`);
  return result;
}

const T0 = 50_000;

Deno.test("limits config: per_client.burst defaults to twice the rate", () => {
  const limits = limitsConfig(`
max_connections: 50
per_client: { max_connections: 5, rate: 10 }
`);
  deepEqual(limits, {
    maxConnections: 50,
    perClientConnections: 5,
    perClientRate: 10,
    perClientBurst: 20,
  });
});

Deno.test("admit() refuses the connection over max_connections, whatever the listener or client", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`max_connections: 3`));
  const a = admitted(limiter.admit("one", null, "192.0.2.1", T0));
  admitted(limiter.admit("two", null, "192.0.2.2", T0));
  admitted(limiter.admit("one", null, "2001:db8::1", T0));
  equal(limiter.total, 3);
  equal(limiter.admit("two", null, "192.0.2.9", T0), "limit-total");
  equal(limiter.admit("one", 100, "192.0.2.1", T0), "limit-total");
  a();
  equal(limiter.total, 2);
  admitted(limiter.admit("two", null, "192.0.2.9", T0));
  equal(limiter.admit("two", null, "192.0.2.10", T0), "limit-total");
});

Deno.test("admit() caps each listener on its own max_connections", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`max_connections: 100`));
  const first = admitted(limiter.admit("small", 2, "192.0.2.1", T0));
  admitted(limiter.admit("small", 2, "192.0.2.2", T0));
  equal(limiter.admit("small", 2, "192.0.2.3", T0), "limit-listener");
  // Another listener, capped or not, is not affected by the full one.
  admitted(limiter.admit("big", null, "192.0.2.3", T0));
  admitted(limiter.admit("other", 2, "192.0.2.3", T0));
  first();
  admitted(limiter.admit("small", 2, "192.0.2.3", T0));
  equal(limiter.admit("small", 2, "192.0.2.4", T0), "limit-listener");
});

Deno.test("admit() caps connections per client address; other addresses are unaffected", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { max_connections: 2 }
`));
  const first = admitted(limiter.admit("tcp", null, "127.0.0.1", T0));
  admitted(limiter.admit("tcp", null, "127.0.0.1", T0));
  equal(limiter.admit("tcp", null, "127.0.0.1", T0), "limit-client");
  equal(limiter.admit("other", null, "127.0.0.1", T0), "limit-client", "over all listeners");
  admitted(limiter.admit("tcp", null, "127.0.0.2", T0));
  admitted(limiter.admit("tcp", null, "127.0.0.2", T0));
  equal(limiter.admit("tcp", null, "127.0.0.2", T0), "limit-client");
  first();
  admitted(limiter.admit("tcp", null, "127.0.0.1", T0));
});

Deno.test("admit() lets a client open `burst` connections at once, then `rate` a second", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { max_connections: 100, rate: 2, burst: 4 }
`));
  const ip = "198.51.100.7";
  // Each connection ends at once: only the rate limits here.
  for (let i = 0; i < 4; i++) admitted(limiter.admit("tcp", null, ip, T0))();
  equal(limiter.admit("tcp", null, ip, T0), "rate-limited");
  equal(limiter.admit("tcp", null, ip, T0 + 499), "rate-limited", "0.998 of a token");
  admitted(limiter.admit("tcp", null, ip, T0 + 500))();
  equal(limiter.admit("tcp", null, ip, T0 + 500), "rate-limited");
  admitted(limiter.admit("tcp", null, ip, T0 + 1000))();
  equal(limiter.admit("tcp", null, ip, T0 + 1001), "rate-limited");
  equal(limiter.total, 0);
});

Deno.test("admit() refills a client's bucket only up to the burst", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { max_connections: 100, rate: 2, burst: 3 }
`));
  const ip = "198.51.100.8";
  for (let i = 0; i < 3; i++) admitted(limiter.admit("tcp", null, ip, T0))();
  equal(limiter.admit("tcp", null, ip, T0), "rate-limited");
  // An hour later the bucket holds 3 tokens, not 7200.
  const later = T0 + 3_600_000;
  for (let i = 0; i < 3; i++) admitted(limiter.admit("tcp", null, ip, later))();
  equal(limiter.admit("tcp", null, ip, later), "rate-limited");
});

Deno.test("admit() keeps one token bucket per client address", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { rate: 1, burst: 2 }
`));
  for (let i = 0; i < 2; i++) admitted(limiter.admit("tcp", null, "192.0.2.1", T0))();
  equal(limiter.admit("tcp", null, "192.0.2.1", T0), "rate-limited");
  for (let i = 0; i < 2; i++) admitted(limiter.admit("tcp", null, "192.0.2.2", T0))();
  equal(limiter.admit("tcp", null, "192.0.2.2", T0), "rate-limited");
});

Deno.test("admit() spends no token on a connection another cap refuses, nor on a refused one", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { max_connections: 1, rate: 1, burst: 2 }
`));
  const ip = "192.0.2.1";
  const open = admitted(limiter.admit("tcp", null, ip, T0)); // one token left
  for (let i = 0; i < 10; i++) equal(limiter.admit("tcp", null, ip, T0), "limit-client");
  open();
  admitted(limiter.admit("tcp", null, ip, T0))(); // the last token
  for (let i = 0; i < 10; i++) equal(limiter.admit("tcp", null, ip, T0), "rate-limited");
  // Refusals did not dig the bucket below zero: one second later there is a whole token.
  admitted(limiter.admit("tcp", null, ip, T0 + 1000))();
});

Deno.test("admit() without per_client.rate never rate-limits", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`max_connections: 100`));
  for (let i = 0; i < 1000; i++) admitted(limiter.admit("tcp", null, "192.0.2.1", T0))();
});

Deno.test("release() frees its slot exactly once, however often it is called", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 2
per_client: { max_connections: 2 }
`));
  const a = admitted(limiter.admit("tcp", 2, "192.0.2.1", T0));
  admitted(limiter.admit("tcp", 2, "192.0.2.1", T0));
  a();
  a();
  a();
  equal(limiter.total, 1, "three calls released one connection");
  admitted(limiter.admit("tcp", 2, "192.0.2.1", T0));
  equal(limiter.total, 2);
  equal(limiter.admit("tcp", 2, "192.0.2.1", T0), "limit-total", "the total cap still holds");
  equal(limiter.admit("tcp", 2, "192.0.2.2", T0), "limit-total");
});

Deno.test("release() of every connection leaves the limiter as it started", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 3
per_client: { max_connections: 3 }
`));
  for (let round = 0; round < 5; round++) {
    const releases = [
      admitted(limiter.admit("a", 3, "192.0.2.1", T0)),
      admitted(limiter.admit("b", 3, "192.0.2.1", T0)),
      admitted(limiter.admit("a", 3, "192.0.2.2", T0)),
    ];
    equal(limiter.admit("a", 3, "192.0.2.3", T0), "limit-total", `round ${round}`);
    for (const r of releases) r();
    equal(limiter.total, 0);
  }
});

Deno.test("update() applies new caps to new connections and keeps counting open ones", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`max_connections: 10`));
  const open = [0, 1, 2, 3].map((i) => admitted(limiter.admit("tcp", null, `192.0.2.${i}`, T0)));
  limiter.update(limitsConfig(`max_connections: 3`));
  equal(limiter.total, 4);
  equal(limiter.admit("tcp", null, "192.0.2.9", T0), "limit-total");
  open[0]();
  equal(limiter.admit("tcp", null, "192.0.2.9", T0), "limit-total", "4 → 3 open: still at cap");
  open[1]();
  admitted(limiter.admit("tcp", null, "192.0.2.9", T0));
});

Deno.test("admit() names the first cap that refuses: total, then listener, then client", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 2
per_client: { max_connections: 1 }
`));
  admitted(limiter.admit("tcp", 1, "192.0.2.1", T0));
  // Listener and client are both at their caps: the listener is named.
  equal(limiter.admit("tcp", 1, "192.0.2.1", T0), "limit-listener");
  equal(limiter.admit("other", 1, "192.0.2.1", T0), "limit-client");
  admitted(limiter.admit("other", 1, "192.0.2.2", T0));
  // Now every cap is reached: the total is named.
  equal(limiter.admit("tcp", 1, "192.0.2.1", T0), "limit-total");
});

Deno.test("clientKey: IPv4 as it is, IPv6 by its /64", () => {
  equal(clientKey("192.0.2.7"), "192.0.2.7");
  equal(clientKey("2001:db8:0:7::1"), "2001:db8:0:7::/64");
  equal(clientKey("2001:db8:0:7:ffff:ffff:ffff:ffff"), "2001:db8:0:7::/64");
  equal(clientKey("2001:0db8:0000:0007:0:0:0:2"), "2001:db8:0:7::/64");
  equal(clientKey("::1"), "0:0:0:0::/64");
  // Another /64 of the same /48 is another client.
  equal(clientKey("2001:db8:0:8::1"), "2001:db8:0:8::/64");
});

Deno.test("per-client caps count an IPv6 /64 as one client, and refuse no one else", () => {
  const limiter = new ConnectionLimiter(limitsConfig(`
max_connections: 100
per_client: { max_connections: 2 }
`));
  admitted(limiter.admit("tcp", null, "2001:db8:0:7::1", T0));
  const second = admitted(limiter.admit("tcp", null, "2001:db8:0:7::2", T0));
  equal(limiter.admit("tcp", null, "2001:db8:0:7::3", T0), "limit-client");
  // Other clients are untouched by one client's refusals.
  admitted(limiter.admit("tcp", null, "2001:db8:0:8::1", T0));
  admitted(limiter.admit("tcp", null, "192.0.2.7", T0));
  second();
  admitted(limiter.admit("tcp", null, "2001:db8:0:7::3", T0));
});

Deno.test("limits default: 100 connections per client, 10,000 in all", () => {
  const limits = limitsConfig("max_connections: 10000");
  equal(limits.perClientConnections, 100);
  equal(limits.maxConnections, 10_000);
});
