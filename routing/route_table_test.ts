import assert from "node:assert/strict";
import { parseConfig } from "../config/parse.ts";
import type { Protocol } from "../config/types.ts";
import { type ConnectionFacts, RouteTable } from "./route_table.ts";

// Each precedence rule is tested both ways (STYLE.md §7): a connection the rule sends to the
// route, and a near miss the rule sends elsewhere. Tables are built the way edgemux builds them:
// from YAML, through parseConfig.

/** A table for one listener whose routes are the given flow-style YAML maps, in order. */
function tableOf(...routes: string[]): RouteTable {
  const { config } = parseConfig(
    `version: 1
backends:
  a: { servers: ["127.0.0.1:9001"] }
  b: { servers: ["127.0.0.1:9002"] }
  c: { servers: ["127.0.0.1:9003"] }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
${routes.map((r) => `      - ${r}\n`).join("")}`,
    "route_table_test.yaml",
  );
  return new RouteTable(config.listeners[0]);
}

/** The name of the route a connection takes, or null. */
function routeFor(
  table: RouteTable,
  protocol: Protocol,
  sni: string | null = null,
  alpn: string[] = [],
): string | null {
  const facts: ConnectionFacts = { protocol, sni, alpn };
  return table.lookup(facts)?.route.name ?? null;
}

const EXACT = "{ name: exact, sni: app.example.test, passthrough: a }";
const WILDCARD = "{ name: wildcard, sni: '*.example.test', passthrough: b }";
const ANY_NAME = "{ name: any-name, protocol: tls, passthrough: c }";

Deno.test("RouteTable.lookup() prefers an exact name to a wildcard to no name, in any config order", () => {
  const orders = [
    [EXACT, WILDCARD, ANY_NAME],
    [ANY_NAME, WILDCARD, EXACT],
    [WILDCARD, ANY_NAME, EXACT],
  ];
  for (const order of orders) {
    const table = tableOf(...order);
    assert.equal(routeFor(table, "tls", "app.example.test"), "exact");
    // Near misses: a sibling name falls to the wildcard, an unrelated one to the catch-all.
    assert.equal(routeFor(table, "tls", "api.example.test"), "wildcard");
    assert.equal(routeFor(table, "tls", "other.test"), "any-name");
  }
});

Deno.test("RouteTable.lookup() matches *.example.test for exactly one extra label", () => {
  const table = tableOf(WILDCARD);
  assert.equal(routeFor(table, "tls", "a.example.test"), "wildcard");
  assert.equal(routeFor(table, "tls", "x-1.example.test"), "wildcard");
  // Near misses: the bare suffix has no extra label; two extra labels are one too many.
  assert.equal(routeFor(table, "tls", "example.test"), null);
  assert.equal(routeFor(table, "tls", "a.b.example.test"), null);
  assert.equal(routeFor(table, "tls", ".example.test"), null);
  assert.equal(routeFor(table, "tls", "aexample.test"), null);
});

const DEEP = "{ name: deep, sni: '**.example.test', passthrough: c }";

Deno.test("RouteTable.lookup() matches **.example.test at any depth, never the bare name", () => {
  const table = tableOf(DEEP);
  for (const sni of ["a.example.test", "a.b.example.test", "x.y.z.example.test"]) {
    assert.equal(routeFor(table, "tls", sni), "deep", sni);
  }
  // Near misses: the bare suffix, a name that only ends in the same letters, another domain.
  for (const sni of ["example.test", "aexample.test", ".example.test", "a.example.tests"]) {
    assert.equal(routeFor(table, "tls", sni), null, sni);
  }
  assert.equal(
    table.lookup({ protocol: "tls", sni: "a.b.example.test", alpn: [] })?.entry.via,
    'wildcard "**.example.test"',
  );
});

Deno.test("RouteTable.lookup() ranks exact, then *., then **. with the longest suffix first", () => {
  const routes = [
    "{ name: exact, sni: a.b.example.test, passthrough: a }",
    "{ name: one, sni: '*.b.example.test', passthrough: a }",
    "{ name: deep-long, sni: '**.b.example.test', passthrough: b }",
    "{ name: deep-short, sni: '**.example.test', passthrough: c }",
    "{ name: any-name, protocol: tls, passthrough: c }",
  ];
  for (
    const order of [routes, [...routes].reverse(), [
      routes[3],
      routes[0],
      routes[4],
      routes[2],
      routes[1],
    ]]
  ) {
    const table = tableOf(...order);
    assert.equal(routeFor(table, "tls", "a.b.example.test"), "exact");
    assert.equal(routeFor(table, "tls", "c.b.example.test"), "one");
    assert.equal(routeFor(table, "tls", "x.c.b.example.test"), "deep-long");
    assert.equal(routeFor(table, "tls", "b.example.test"), "deep-short");
    assert.equal(routeFor(table, "tls", "x.y.example.test"), "deep-short");
    assert.equal(routeFor(table, "tls", "example.test"), "any-name");
  }
  // A longer suffix whose routes want an ALPN the client does not offer falls to the shorter.
  const alpn = tableOf(
    "{ name: deep-h2, sni: '**.b.example.test', alpn: h2, passthrough: a }",
    "{ name: deep-short, sni: '**.example.test', passthrough: c }",
  );
  assert.equal(routeFor(alpn, "tls", "x.b.example.test", ["h2"]), "deep-h2");
  assert.equal(routeFor(alpn, "tls", "x.b.example.test", ["http/1.1"]), "deep-short");
});

Deno.test("RouteTable.lookup() compares names exactly; the ClientHello parser normalises them", () => {
  const table = tableOf("{ name: exact, sni: App.Example.Test., passthrough: a }");
  assert.equal(routeFor(table, "tls", "app.example.test"), "exact");
  assert.equal(routeFor(table, "tls", "app.example.tes"), null);
  assert.equal(routeFor(table, "tls", "app.example.test.x"), null);
});

Deno.test("RouteTable.lookup() prefers a route naming an ALPN the client offers to a plain one", () => {
  const plain = "{ name: plain, sni: app.example.test, passthrough: a }";
  const acme = "{ name: acme, sni: app.example.test, alpn: acme-tls/1, passthrough: b }";
  for (const table of [tableOf(plain, acme), tableOf(acme, plain)]) {
    assert.equal(routeFor(table, "tls", "app.example.test", ["acme-tls/1"]), "acme");
    assert.equal(routeFor(table, "tls", "app.example.test", ["h2", "acme-tls/1"]), "acme");
    // Near misses: without that ALPN offered, the plain route takes the connection.
    assert.equal(routeFor(table, "tls", "app.example.test", ["h2", "http/1.1"]), "plain");
    assert.equal(routeFor(table, "tls", "app.example.test", []), "plain");
  }
});

Deno.test("RouteTable.lookup() falls through to the next kind of name when no ALPN route fits", () => {
  const table = tableOf(
    "{ name: exact-h2, sni: app.example.test, alpn: h2, passthrough: a }",
    WILDCARD,
  );
  assert.equal(routeFor(table, "tls", "app.example.test", ["h2"]), "exact-h2");
  assert.equal(routeFor(table, "tls", "app.example.test", ["http/1.1"]), "wildcard");
});

Deno.test("RouteTable.lookup() ignores the client's ALPN order and takes routes in config order", () => {
  const table = tableOf(
    "{ name: first, sni: app.example.test, alpn: http/1.1, passthrough: a }",
    "{ name: second, sni: app.example.test, alpn: [h2, http/1.1], passthrough: b }",
  );
  assert.equal(routeFor(table, "tls", "app.example.test", ["h2", "http/1.1"]), "first");
  assert.equal(routeFor(table, "tls", "app.example.test", ["h2"]), "second");
});

Deno.test("RouteTable.lookup() prefers a route that names the protocol to protocol: any", () => {
  const any = "{ name: any, forward: a }";
  const ssh = "{ name: ssh, protocol: ssh, forward: b }";
  for (const table of [tableOf(any, ssh), tableOf(ssh, any)]) {
    assert.equal(routeFor(table, "ssh"), "ssh");
    // Near misses: every other protocol still goes to the catch-all.
    assert.equal(routeFor(table, "http"), "any");
    assert.equal(routeFor(table, "silent"), "any");
    assert.equal(routeFor(table, "tls", "app.example.test"), "any");
  }
});

Deno.test("RouteTable.lookup() only takes routes for the connection's protocol", () => {
  const table = tableOf("{ name: ssh, protocol: [ssh, silent], forward: a }");
  assert.equal(routeFor(table, "ssh"), "ssh");
  assert.equal(routeFor(table, "silent"), "ssh");
  assert.equal(routeFor(table, "http"), null);
  assert.equal(routeFor(table, "unknown"), null);
  assert.equal(routeFor(table, "tls", "app.example.test"), null);
});

Deno.test("RouteTable.lookup() breaks ties by config order", () => {
  const table = tableOf(
    "{ name: first, protocol: [ssh], forward: a }",
    "{ name: second, protocol: [ssh, http], forward: b }",
  );
  assert.equal(routeFor(table, "ssh"), "first");
  // Near miss: where the first route does not apply, the second is not shadowed.
  assert.equal(routeFor(table, "http"), "second");
});

Deno.test("RouteTable.lookup() sends a TLS client without SNI only to routes without sni", () => {
  const table = tableOf(EXACT, WILDCARD, "{ name: no-sni, protocol: tls, passthrough: c }");
  assert.equal(routeFor(table, "tls", null), "no-sni");
  assert.equal(routeFor(table, "tls", "app.example.test"), "exact");

  const namedOnly = tableOf(EXACT, WILDCARD);
  assert.equal(routeFor(namedOnly, "tls", null), null);
});

Deno.test("RouteTable.lookup() returns how the route matched", () => {
  const table = tableOf(EXACT, WILDCARD, ANY_NAME);
  assert.equal(
    table.lookup({ protocol: "tls", sni: "app.example.test", alpn: [] })?.entry.via,
    'server name "app.example.test"',
  );
  assert.equal(
    table.lookup({ protocol: "tls", sni: "x.example.test", alpn: [] })?.entry.via,
    'wildcard "*.example.test"',
  );
  assert.equal(
    table.lookup({ protocol: "tls", sni: null, alpn: [] })?.entry.via,
    "any server name",
  );
});

Deno.test("RouteTable.sniff is false only when every route takes any protocol", () => {
  assert.equal(tableOf("{ forward: a }").sniff, false);
  assert.equal(tableOf("{ protocol: any, forward: a }").sniff, false);
  // Near misses: one route that names a protocol makes the listener read first.
  assert.equal(tableOf("{ protocol: ssh, forward: a }", "{ forward: b }").sniff, true);
  assert.equal(tableOf("{ passthrough: a }").sniff, true);
  assert.equal(tableOf("{ redirect: https }").sniff, true);
});

Deno.test("RouteTable.accepts() is true for exactly the protocols some route takes", () => {
  const table = tableOf(EXACT, "{ protocol: ssh, forward: b }");
  const accepted = (["tls", "http", "ssh", "silent", "unknown"] as const).filter((p) =>
    table.accepts(p)
  );
  assert.deepEqual(accepted, ["tls", "ssh"]);
  assert.equal(tableOf("{ forward: a }").accepts("unknown"), true);
});

Deno.test("RouteTable.lists() puts ALPN routes first, then named protocols, then config order", () => {
  const table = tableOf(
    "{ name: any, forward: a }",
    "{ name: tls, protocol: tls, forward: b }",
    "{ name: h2, protocol: tls, alpn: h2, forward: c }",
  );
  const tlsAny = [...table.lists()].find((l) =>
    l.protocol === "tls" && l.key === "any server name"
  );
  assert.deepEqual(tlsAny?.entries.map((e) => e.route.name), ["h2", "tls", "any"]);
});

Deno.test("RouteTable.lookup() ranks edge and reencrypt routes by server name like passthrough", () => {
  const { config } = parseConfig(
    `version: 1
certificates: { development: true }
backends:
  plain: { servers: ["127.0.0.1:9001"] }
  secure: { servers: ["127.0.0.1:9002"], tls: true }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - { name: catch-all, protocol: tls, passthrough: plain }
      - { name: wildcard, sni: "*.example.test", reencrypt: secure }
      - { name: exact, sni: app.example.test, edge: { http: [{ backend: plain }] } }
      - { name: h2-only, sni: app.example.test, alpn: h2, edge: { tcp: plain } }
`,
    "route_table_test.yaml",
  );
  const table = new RouteTable(config.listeners[0]);
  assert.equal(routeFor(table, "tls", "app.example.test", ["h2"]), "h2-only");
  assert.equal(routeFor(table, "tls", "app.example.test", ["http/1.1"]), "exact");
  assert.equal(routeFor(table, "tls", "api.example.test"), "wildcard");
  assert.equal(routeFor(table, "tls", "example.test"), "catch-all");
  // Terminating routes take TLS only, like passthrough.
  assert.equal(routeFor(table, "http"), null);
  assert.deepEqual(
    (["tls", "http", "ssh", "silent", "unknown"] as const).filter((p) => table.accepts(p)),
    ["tls"],
  );
});
