import { equal } from "node:assert/strict";
import type { HostPattern, HttpRouteConfig, ListenerConfig } from "../config/types.ts";
import { parseConfig } from "../config/parse.ts";
import {
  anyDepthCovers,
  certNameCovers,
  patternMatches,
  wildcardCovers,
  wildcardSuffixOf,
} from "./hosts.ts";
import { RouteTable } from "./route_table.ts";
import { HttpRouter } from "./http_router.ts";
import { CertStore } from "../proxy/tls/certs/store.ts";
import { fakeCert } from "../proxy/tls/certs/_testing.ts";

const SUFFIXES = ["example.test", "b.example.test", "test"];

/** Names around each suffix: one label more, two more, the bare suffix, empty labels, look-alikes. */
const NAMES = [
  "example.test",
  "a.example.test",
  "a.b.example.test",
  "b.example.test",
  "x.b.example.test",
  "xexample.test",
  "a.xexample.test",
  ".example.test",
  "a..example.test",
  "a.example.test.",
  "test",
  "a.test",
  "a.b.test",
  "example.test.a",
  "",
  ".",
];

/** The rules as the docs state them, written out the slow way. */
function oneMoreLabel(suffix: string, name: string): boolean {
  const labels = name.split(".");
  return labels.length >= 2 && labels[0] !== "" && labels.slice(1).join(".") === suffix;
}
function oneOrMoreLabels(suffix: string, name: string): boolean {
  if (!name.endsWith(`.${suffix}`)) return false;
  const head = name.slice(0, name.length - suffix.length - 1);
  return head.length > 0 && !name.split(".").includes("");
}

Deno.test("wildcardCovers() and wildcardSuffixOf() are one rule: exactly one more non-empty label", () => {
  for (const suffix of SUFFIXES) {
    for (const name of NAMES) {
      const want = oneMoreLabel(suffix, name);
      equal(wildcardCovers(suffix, name), want, `*.${suffix} / ${JSON.stringify(name)}`);
      equal(wildcardSuffixOf(name) === suffix, want, `suffix of ${JSON.stringify(name)}`);
      equal(certNameCovers(`*.${suffix}`, name), want, `cert *.${suffix} / ${name}`);
    }
  }
});

Deno.test("anyDepthCovers(): one or more labels, none empty, never the bare suffix", () => {
  for (const suffix of SUFFIXES) {
    for (const name of NAMES) {
      equal(anyDepthCovers(suffix, name), oneOrMoreLabels(suffix, name), `**.${suffix} / ${name}`);
    }
  }
});

Deno.test("an exact certificate name and an exact pattern cover only the name itself", () => {
  for (const name of NAMES) {
    equal(certNameCovers("a.example.test", name), name === "a.example.test", name);
    equal(
      patternMatches({ kind: "exact", name: "a.example.test" }, name),
      name === "a.example.test",
    );
  }
});

function listenerWith(sni: string): ListenerConfig {
  const { config } = parseConfig(
    `version: 1
backends:
  a: { servers: ["127.0.0.1:9001"] }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - { name: r, sni: '${sni}', passthrough: a }
`,
    "hosts_test.yaml",
  );
  return config.listeners[0];
}

function httpRoute(pattern: HostPattern): HttpRouteConfig {
  return {
    name: "r",
    hosts: [pattern],
    path: null,
    action: { kind: "backend", backend: "a" },
    stripPrefix: false,
    rewritePrefix: null,
    requestHeaders: { remove: [], set: [], add: [] },
    responseHeaders: { remove: [], set: [], add: [] },
    position: { file: "hosts_test.yaml", line: 1, column: 1 },
  };
}

Deno.test("route tables, HTTP routers and the certificate store match wildcards by the same rule", () => {
  const base = new Date(1e4 * 24 * 60 * 60 * 1000);
  // Only names a config or a ClientHello can carry reach the tables (normalised, non-empty).
  const names = NAMES.filter((n) => n.length > 0 && !n.endsWith("."));
  for (const suffix of SUFFIXES) {
    for (const [kind, text] of [["wildcard", `*.${suffix}`], ["anyDepth", `**.${suffix}`]]) {
      const pattern = { kind, suffix } as HostPattern;
      const table = new RouteTable(listenerWith(text));
      const router = new HttpRouter([httpRoute(pattern)]);
      const store = new CertStore([fakeCert([text])], { defaultName: null, now: () => +base });
      for (const name of names) {
        const want = patternMatches(pattern, name);
        const what = `${text} / ${name}`;
        equal(table.lookup({ protocol: "tls", sni: name, alpn: [] }) !== null, want, what);
        equal(router.match(name, "/") !== null, want, what);
        // A certificate's `**.` is no wildcard at all (RFC 6125 §6.4.3): it covers nothing.
        equal(store.covers(name) !== null, kind === "wildcard" && want, `cert ${what}`);
      }
    }
  }
});
