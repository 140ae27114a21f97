import assert from "node:assert/strict";
import fc from "fast-check";
import type { HostPattern, HttpRouteConfig, PathMatch } from "../config/types.ts";
import { HttpRouter, normalizeHost } from "./http_router.ts";

// Each precedence rule is tested both ways (STYLE.md §7): a request the rule sends to the route
// and a near miss it sends elsewhere. Routes are written as HttpRouteConfig values directly.

interface RouteSpec {
  host?: string | string[];
  path?: string;
  exact?: string;
  strip?: boolean;
  rewrite?: string;
}

function hostPattern(text: string): HostPattern {
  return text.startsWith("**.")
    ? { kind: "anyDepth", suffix: text.slice(3) }
    : text.startsWith("*.")
    ? { kind: "wildcard", suffix: text.slice(2) }
    : { kind: "exact", name: text };
}

function route(name: string, spec: RouteSpec = {}): HttpRouteConfig {
  const hosts = spec.host === undefined
    ? null
    : (Array.isArray(spec.host) ? spec.host : [spec.host]).map(hostPattern);
  const path: PathMatch | null = spec.exact !== undefined
    ? { kind: "exact", value: spec.exact }
    : spec.path !== undefined
    ? { kind: "prefix", value: spec.path }
    : null;
  return {
    name,
    hosts,
    path,
    action: { kind: "backend", backend: name },
    stripPrefix: spec.strip ?? false,
    rewritePrefix: spec.rewrite ?? null,
    requestHeaders: { remove: [], set: [], add: [] },
    responseHeaders: { remove: [], set: [], add: [] },
    position: { file: "http_router_test.yaml", line: 1, column: 1 },
  };
}

function routeFor(router: HttpRouter, host: string | null, path: string): string | null {
  return router.match(host, path)?.route.name ?? null;
}

function upstreamFor(router: HttpRouter, host: string | null, path: string): string | null {
  return router.match(host, path)?.upstreamPath ?? null;
}

/** Every order of a list, to show config order does not matter where it should not. */
function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
  );
}

Deno.test("normalizeHost() removes the port, lowercases and drops one trailing dot", () => {
  const cases: [string, string | null][] = [
    ["a.example.test", "a.example.test"],
    ["A.Example.TEST", "a.example.test"],
    ["a.example.test:8443", "a.example.test"],
    ["a.example.test.", "a.example.test"],
    ["A.example.test.:443", "a.example.test"],
    ["a.example.test:65535", "a.example.test"],
    ["a.example.test:1", "a.example.test"],
    ["[::1]:443", "[::1]"],
    ["a.example.test..", "a.example.test."],
    ["[::1]", "[::1]"],
    ["[::1]:8443", "[::1]"],
    ["[FE80::A]:80", "[fe80::a]"],
    ["192.0.2.7:80", "192.0.2.7"],
    ["", null],
    [":80", null],
    [".", null],
    // No valid authority has two colons outside brackets; it is kept whole and matches nothing.
    ["::1", "::1"],
  ];
  for (const [authority, expected] of cases) {
    assert.equal(normalizeHost(authority), expected, authority);
  }
});

Deno.test("normalizeHost() gives no host when the port names no TCP port", () => {
  const ports = [
    "",
    "0",
    "00",
    "0443",
    "65536",
    "99999",
    "123456",
    "8x",
    "x",
    "-1",
    "+443",
    " 443",
  ];
  for (const port of ports) {
    assert.equal(normalizeHost(`a.example.test:${port}`), null, `a.example.test:${port}`);
    assert.equal(normalizeHost(`[::1]:${port}`), null, `[::1]:${port}`);
  }
  // After the bracket of an IPv6 literal only a port may follow.
  assert.equal(normalizeHost("[::1]x"), null);
  assert.equal(normalizeHost("[::1]8443"), null);
});

const EXACT = route("exact", { host: "app.example.test" });
const WILDCARD = route("wildcard", { host: "*.example.test" });
const ANY_HOST = route("any-host");

Deno.test("HttpRouter.match() prefers an exact host to a wildcard to no host, in any config order", () => {
  for (const order of permutations([EXACT, WILDCARD, ANY_HOST])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "app.example.test", "/"), "exact");
    // Near misses: a sibling name falls to the wildcard, an unrelated one to the catch-all.
    assert.equal(routeFor(router, "api.example.test", "/"), "wildcard");
    assert.equal(routeFor(router, "other.test", "/"), "any-host");
  }
});

Deno.test("HttpRouter.match() matches *.example.test for exactly one extra label", () => {
  const router = new HttpRouter([WILDCARD]);
  assert.equal(routeFor(router, "a.example.test", "/"), "wildcard");
  assert.equal(routeFor(router, "x-1.example.test:8443", "/"), "wildcard");
  // Near misses: the bare suffix has no extra label; two extra labels are one too many.
  assert.equal(routeFor(router, "example.test", "/"), null);
  assert.equal(routeFor(router, "a.b.example.test", "/"), null);
  assert.equal(routeFor(router, ".example.test", "/"), null);
  assert.equal(routeFor(router, "aexample.test", "/"), null);
});

Deno.test("HttpRouter.match() matches **.example.test at any depth, never the bare name", () => {
  const router = new HttpRouter([route("deep", { host: "**.example.test" })]);
  for (const host of ["a.example.test", "a.b.example.test", "x.y.z.example.test:8443"]) {
    assert.equal(routeFor(router, host, "/"), "deep", host);
  }
  for (const host of ["example.test", "aexample.test", "a.example.test.x", "test"]) {
    assert.equal(routeFor(router, host, "/"), null, host);
  }
});

Deno.test("HttpRouter.match() ranks exact, then *., then **. with the longest suffix first", () => {
  const exact = route("exact", { host: "a.b.example.test" });
  const one = route("one", { host: "*.b.example.test" });
  const deepLong = route("deep-long", { host: "**.b.example.test" });
  const deepShort = route("deep-short", { host: "**.example.test" });
  const any = route("any");
  for (const order of permutations([exact, one, deepLong, deepShort, any])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "a.b.example.test", "/"), "exact");
    assert.equal(routeFor(router, "c.b.example.test", "/"), "one");
    assert.equal(routeFor(router, "x.c.b.example.test", "/"), "deep-long");
    assert.equal(routeFor(router, "c.example.test", "/"), "deep-short");
    assert.equal(routeFor(router, "x.y.example.test", "/"), "deep-short");
    assert.equal(routeFor(router, "b.example.test", "/"), "deep-short");
    assert.equal(routeFor(router, "example.test", "/"), "any");
  }
  // A longer suffix whose routes take other paths falls through to the shorter one.
  const router = new HttpRouter([
    route("deep-long-api", { host: "**.b.example.test", path: "/api" }),
    route("deep-short", { host: "**.example.test" }),
  ]);
  assert.equal(routeFor(router, "x.b.example.test", "/api/v1"), "deep-long-api");
  assert.equal(routeFor(router, "x.b.example.test", "/web"), "deep-short");
  assert.equal(
    router.explain("x.b.example.test", "/web").reason,
    'host "x.b.example.test" wildcard "**.example.test", any path',
  );
});

Deno.test("HttpRouter.match() normalises the host it is given", () => {
  const router = new HttpRouter([EXACT]);
  for (const host of ["app.example.test", "APP.Example.Test", "app.example.test.:8443"]) {
    assert.equal(routeFor(router, host, "/"), "exact", host);
  }
  // Near misses: a different name, a name with the label cut short, two trailing dots.
  for (const host of ["app.example.tes", "pp.example.test", "app.example.test..", "[::1]"]) {
    assert.equal(routeFor(router, host, "/"), null, host);
  }
});

Deno.test("HttpRouter.match() sends a request without a host only to routes without host", () => {
  const router = new HttpRouter([EXACT, WILDCARD]);
  assert.equal(routeFor(router, null, "/"), null);
  assert.equal(routeFor(router, "", "/"), null);
  const withCatchAll = new HttpRouter([EXACT, WILDCARD, ANY_HOST]);
  assert.equal(routeFor(withCatchAll, null, "/"), "any-host");
  assert.equal(routeFor(withCatchAll, ":443", "/"), "any-host");
});

Deno.test("HttpRouter.match() ranks the host before the path", () => {
  const hostOnly = route("host-only", { host: "app.example.test" });
  const exactPathAnyHost = route("exact-path-any-host", { exact: "/x" });
  const wildcardPrefix = route("wildcard-prefix", { host: "*.example.test", path: "/x" });
  for (const order of permutations([hostOnly, exactPathAnyHost, wildcardPrefix])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "app.example.test", "/x"), "host-only");
    // Near misses: without the exact host, the wildcard's prefix and then the path decide.
    assert.equal(routeFor(router, "web.example.test", "/x"), "wildcard-prefix");
    assert.equal(routeFor(router, "other.test", "/x"), "exact-path-any-host");
  }
});

Deno.test("HttpRouter.match() falls through to a less specific host when no path matches", () => {
  const admin = route("admin", { host: "app.example.test", path: "/admin" });
  const wildcardApi = route("wildcard-api", { host: "*.example.test", path: "/api" });
  for (const order of permutations([admin, wildcardApi, ANY_HOST])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "app.example.test", "/admin/x"), "admin");
    assert.equal(routeFor(router, "app.example.test", "/api/x"), "wildcard-api");
    assert.equal(routeFor(router, "app.example.test", "/other"), "any-host");
  }
  const noCatchAll = new HttpRouter([admin]);
  assert.equal(routeFor(noCatchAll, "app.example.test", "/other"), null);
});

Deno.test("HttpRouter.match() prefers an exact path to a prefix to no path, in any config order", () => {
  const exactPath = route("exact-path", { host: "app.example.test", exact: "/api/health" });
  const prefix = route("prefix", { host: "app.example.test", path: "/api" });
  const noPath = route("no-path", { host: "app.example.test" });
  for (const order of permutations([exactPath, prefix, noPath])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "app.example.test", "/api/health"), "exact-path");
    assert.equal(routeFor(router, "app.example.test", "/api/health?verbose=1"), "exact-path");
    // Near misses: one character more or less is no longer the exact path.
    assert.equal(routeFor(router, "app.example.test", "/api/health/"), "prefix");
    assert.equal(routeFor(router, "app.example.test", "/api/healthz"), "prefix");
    assert.equal(routeFor(router, "app.example.test", "/ap"), "no-path");
  }
});

Deno.test("HttpRouter.match() prefers a longer prefix to a shorter one, in any config order", () => {
  const short = route("short", { path: "/api" });
  const long = route("long", { path: "/api/v2" });
  const slash = route("slash", { path: "/" });
  for (const order of permutations([short, long, slash])) {
    const router = new HttpRouter(order);
    assert.equal(routeFor(router, "a.test", "/api/v2/users"), "long");
    assert.equal(routeFor(router, "a.test", "/api/v2"), "long");
    // Near misses: a sibling of the long prefix, and paths only "/" covers.
    assert.equal(routeFor(router, "a.test", "/api/v3"), "short");
    assert.equal(routeFor(router, "a.test", "/api/v2x"), "short");
    assert.equal(routeFor(router, "a.test", "/apiv2"), "slash");
    assert.equal(routeFor(router, "a.test", "/"), "slash");
  }
});

Deno.test("HttpRouter.match() matches a prefix only at a segment boundary", () => {
  const router = new HttpRouter([route("api", { path: "/api" })]);
  for (const path of ["/api", "/api/", "/api/x", "/api?q", "/api/?q", "/api//x"]) {
    assert.equal(routeFor(router, "a.test", path), "api", path);
  }
  for (const path of ["/apix", "/ap", "/", "/x/api", "/API", "/apix?/"]) {
    assert.equal(routeFor(router, "a.test", path), null, path);
  }
});

Deno.test("HttpRouter.match() matches a prefix ending in / only below it", () => {
  const router = new HttpRouter([route("api", { path: "/api/" })]);
  for (const path of ["/api/", "/api/x", "/api/?q", "/api/x/y"]) {
    assert.equal(routeFor(router, "a.test", path), "api", path);
  }
  for (const path of ["/api", "/api?q", "/apix", "/api?/"]) {
    assert.equal(routeFor(router, "a.test", path), null, path);
  }
});

Deno.test("HttpRouter.match() compares an exact path without the query", () => {
  const router = new HttpRouter([route("health", { exact: "/health" })]);
  for (const path of ["/health", "/health?", "/health?x=1&y=/z"]) {
    assert.equal(routeFor(router, "a.test", path), "health", path);
  }
  for (const path of ["/health/", "/healthz", "/healt", "/Health", "/?/health"]) {
    assert.equal(routeFor(router, "a.test", path), null, path);
  }
});

Deno.test("HttpRouter.match() breaks ties by config order", () => {
  const first = route("first", { host: "app.example.test", path: "/api" });
  const second = route("second", { host: "app.example.test", path: "/api" });
  assert.equal(routeFor(new HttpRouter([first, second]), "app.example.test", "/api"), "first");
  assert.equal(routeFor(new HttpRouter([second, first]), "app.example.test", "/api"), "second");
  // Same length, different prefixes: both cannot match, so order is not consulted.
  const other = route("other", { host: "app.example.test", path: "/web" });
  assert.equal(routeFor(new HttpRouter([other, second]), "app.example.test", "/api"), "second");
});

Deno.test("HttpRouter.match() files a route with several hosts under each of them", () => {
  const both = route("both", { host: ["app.example.test", "*.other.test"], path: "/x" });
  const router = new HttpRouter([both, ANY_HOST]);
  assert.equal(routeFor(router, "app.example.test", "/x"), "both");
  assert.equal(routeFor(router, "a.other.test", "/x"), "both");
  // Near misses: the other names, and the right names with the wrong path.
  assert.equal(routeFor(router, "b.example.test", "/x"), "any-host");
  assert.equal(routeFor(router, "a.other.test", "/y"), "any-host");
  // A host named twice is still one route, not a tie with itself.
  const twice = new HttpRouter([route("twice", { host: ["a.test", "a.test"] })]);
  assert.equal(twice.explain("a.test", "/").reason, 'host "a.test" exact, any path');
});

Deno.test("HttpRouter.match() forwards the path unchanged without strip or rewrite", () => {
  const router = new HttpRouter([route("api", { path: "/api" })]);
  assert.equal(upstreamFor(router, "a.test", "/api/x?q=1"), "/api/x?q=1");
});

Deno.test("HttpRouter.match() strips the matched prefix, never leaving an empty path", () => {
  const cases: [prefix: string, path: string, upstream: string][] = [
    ["/api", "/api", "/"],
    ["/api", "/api/", "/"],
    ["/api", "/api/x", "/x"],
    ["/api", "/api/x/", "/x/"],
    ["/api", "/api?q=/api", "/?q=/api"],
    ["/api", "/api/x?q", "/x?q"],
    ["/api", "/api//x", "//x"],
    ["/api/", "/api/", "/"],
    ["/api/", "/api/x", "/x"],
    ["/api/", "/api/x?q", "/x?q"],
    ["/", "/x", "/x"],
    ["/", "/", "/"],
  ];
  for (const [prefix, path, expected] of cases) {
    const router = new HttpRouter([route("r", { path: prefix, strip: true })]);
    assert.equal(upstreamFor(router, "a.test", path), expected, `${prefix} ${path}`);
  }
});

Deno.test("HttpRouter.match() rewrites the matched prefix without doubling or losing a slash", () => {
  const cases: [prefix: string, rewrite: string, path: string, upstream: string][] = [
    ["/api", "/v2", "/api", "/v2"],
    ["/api", "/v2", "/api/", "/v2/"],
    ["/api", "/v2", "/api/x", "/v2/x"],
    ["/api", "/v2/", "/api", "/v2/"],
    ["/api", "/v2/", "/api/", "/v2/"],
    ["/api", "/v2/", "/api/x", "/v2/x"],
    ["/api/", "/v2", "/api/", "/v2/"],
    ["/api/", "/v2", "/api/x", "/v2/x"],
    ["/api/", "/v2/", "/api/x", "/v2/x"],
    ["/api", "/", "/api/x", "/x"],
    ["/api", "/", "/api", "/"],
    ["/", "/v2", "/", "/v2/"],
    ["/", "/v2", "/x", "/v2/x"],
    ["/", "/v2/", "/x/y", "/v2/x/y"],
    ["/api", "/v2", "/api/x?a=/api/", "/v2/x?a=/api/"],
  ];
  for (const [prefix, rewrite, path, expected] of cases) {
    const router = new HttpRouter([route("r", { path: prefix, rewrite })]);
    assert.equal(upstreamFor(router, "a.test", path), expected, `${prefix} → ${rewrite}: ${path}`);
  }
});

Deno.test("HttpRouter.match() leaves exact-path and pathless routes' paths alone", () => {
  const router = new HttpRouter([
    route("exact", { exact: "/x", strip: true }),
    route("any", { rewrite: "/v2" }),
  ]);
  assert.equal(upstreamFor(router, "a.test", "/x?q"), "/x?q");
  assert.equal(upstreamFor(router, "a.test", "/y?q"), "/y?q");
});

Deno.test("HttpRouter.explain() says which host tier and path rule chose the route", () => {
  const router = new HttpRouter([
    route("api", { host: "a.example.test", path: "/api" }),
    route("api-v2", { host: "a.example.test", path: "/api/v2" }),
    route("health", { host: "a.example.test", exact: "/health" }),
    route("wild", { host: "*.example.test" }),
    route("wild-too", { host: "*.example.test" }),
    route("root", { path: "/" }),
  ]);
  const cases: [host: string | null, path: string, name: string | null, reason: string][] = [
    ["A.example.test:443", "/api/x", "api", 'host "a.example.test" exact, path prefix "/api"'],
    [
      "a.example.test",
      "/api/v2/x",
      "api-v2",
      'host "a.example.test" exact, path prefix "/api/v2" (longest of 2)',
    ],
    ["a.example.test", "/health?x", "health", 'host "a.example.test" exact, path exact "/health"'],
    [
      "b.example.test",
      "/",
      "wild",
      'host "b.example.test" wildcard "*.example.test", any path, first in config order of 2',
    ],
    [
      "a.example.test",
      "/web",
      "wild",
      'host "a.example.test" wildcard "*.example.test" (3 more specific routes for it take ' +
      "other paths), any path, first in config order of 2",
    ],
    ["other.test", "/x", "root", 'host "other.test" by a route without host, path prefix "/"'],
    [null, "/x", "root", 'no host, path prefix "/"'],
  ];
  for (const [host, path, name, reason] of cases) {
    const explained = router.explain(host, path);
    assert.equal(explained.match?.route.name ?? null, name, `${host} ${path}`);
    assert.equal(explained.reason, reason);
    assert.deepEqual(explained.match, router.match(host, path));
  }
});

Deno.test("HttpRouter.explain() says why nothing matched", () => {
  const router = new HttpRouter([route("api", { host: "a.example.test", path: "/api" })]);
  assert.deepEqual(router.explain("a.example.test", "/web?x"), {
    match: null,
    reason: 'host "a.example.test", path "/web": the one route for this host takes other paths',
  });
  assert.deepEqual(router.explain("b.example.test", "/api"), {
    match: null,
    reason: 'host "b.example.test", path "/api": no route takes this host',
  });
});

// The reference matcher: every route, every pattern, the precedence computed as a sort key.
// Slow and plain on purpose; the property test below holds the fast router to it.

function referenceHost(authority: string): string | null {
  let host = authority.toLowerCase();
  const bracketed = /^(\[[^\]]*\])/.exec(host);
  if (bracketed) host = bracketed[1];
  else if ((host.match(/:/g) ?? []).length === 1) host = host.split(":")[0];
  if (!bracketed && host.endsWith(".")) host = host.slice(0, -1);
  return host === "" ? null : host;
}

function referencePathMatches(p: PathMatch | null, pathOnly: string): boolean {
  if (p === null) return true;
  if (p.kind === "exact") return pathOnly === p.value;
  if (p.value.endsWith("/")) return pathOnly.startsWith(p.value);
  return pathOnly === p.value || pathOnly.startsWith(p.value + "/");
}

function referenceUpstream(r: HttpRouteConfig, pathOnly: string, query: string): string {
  const target = r.rewritePrefix ?? (r.stripPrefix ? "/" : null);
  if (target === null || r.path === null || r.path.kind !== "prefix") return pathOnly + query;
  const v = r.path.value;
  // What follows the prefix, with the slash a trailing-"/" prefix consumed given back.
  const remainder = v.endsWith("/") ? "/" + pathOnly.slice(v.length) : pathOnly.slice(v.length);
  let result: string;
  if (remainder === "") result = target;
  else if (target.endsWith("/")) result = target + remainder.slice(1);
  else result = target + remainder;
  return (result === "" ? "/" : result) + query;
}

function referenceMatch(
  routes: readonly HttpRouteConfig[],
  host: string | null,
  path: string,
): { route: HttpRouteConfig; upstreamPath: string } | null {
  const name = host === null ? null : referenceHost(host);
  const q = path.indexOf("?");
  const pathOnly = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? "" : path.slice(q);
  let best: { key: number[]; route: HttpRouteConfig } | null = null;
  routes.forEach((r, order) => {
    if (!referencePathMatches(r.path, pathOnly)) return;
    // Each matching host pattern as [tier, rank within the tier]; the best one counts.
    const tiers: number[][] = [];
    if (r.hosts === null) tiers.push([3, 0]);
    else {
      for (const h of r.hosts) {
        if (name === null) continue;
        if (h.kind === "exact" && h.name === name) tiers.push([0, 0]);
        const labels = name.split(".");
        if (h.kind === "wildcard") {
          if (labels.length >= 2 && labels[0] !== "" && labels.slice(1).join(".") === h.suffix) {
            tiers.push([1, 0]);
          }
        }
        if (h.kind === "anyDepth") {
          // One or more non-empty labels in front of the suffix; a longer suffix ranks first.
          const n = h.suffix.split(".").length;
          const front = labels.slice(0, labels.length - n);
          if (
            front.length >= 1 && front.every((l) => l !== "") &&
            labels.slice(labels.length - n).join(".") === h.suffix
          ) {
            tiers.push([2, -h.suffix.length]);
          }
        }
      }
    }
    if (tiers.length === 0) return;
    const host = tiers.reduce((a, b) => (compareKeys(a, b) <= 0 ? a : b));
    const pathRank = r.path === null ? 2 : r.path.kind === "exact" ? 0 : 1;
    const length = r.path?.kind === "prefix" ? -r.path.value.length : 0;
    const key = [...host, pathRank, length, order];
    if (best === null || compareKeys(key, best.key) < 0) best = { key, route: r };
  });
  if (best === null) return null;
  const route = (best as { route: HttpRouteConfig }).route;
  return { route, upstreamPath: referenceUpstream(route, pathOnly, query) };
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

const HOST_PATTERNS = [
  "a.test",
  "b.test",
  "x.a.test",
  "*.a.test",
  "*.test",
  "*.x.a.test",
  "**.a.test",
  "**.test",
  "**.x.a.test",
];
const PATH_VALUES = ["/", "/a", "/a/", "/a/b", "/ab", "/b", "/a/b/"];
const REWRITES = ["/", "/v2", "/v2/", "/a"];

const routeArb = fc.record({
  hosts: fc.option(fc.uniqueArray(fc.constantFrom(...HOST_PATTERNS), { minLength: 1 })),
  path: fc.option(
    fc.record({ kind: fc.constantFrom("exact", "prefix"), value: fc.constantFrom(...PATH_VALUES) }),
  ),
  strip: fc.boolean(),
  rewrite: fc.option(fc.constantFrom(...REWRITES)),
});

const requestArb = fc.record({
  host: fc.option(
    fc.constantFrom(
      "a.test",
      "A.TEST.",
      "a.test:8080",
      "x.a.test",
      "X.a.test.:1",
      "y.a.test",
      "z.x.a.test",
      "w.z.x.a.test",
      "w..x.a.test",
      "x.a.test.:80",
      "b.test",
      "test",
      "c.b.test",
      "[::1]:80",
      ".a.test",
      "a.test..",
      "",
    ),
  ),
  path: fc.tuple(
    fc.constantFrom("/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/ab", "/abc", "/b", "/a//b"),
    fc.constantFrom("", "?", "?q=/a", "?/b"),
  ).map(([p, q]) => p + q),
});

Deno.test("HttpRouter.match() agrees with the reference matcher on random tables", () => {
  fc.assert(
    fc.property(
      fc.array(routeArb, { maxLength: 12 }),
      fc.array(requestArb, { minLength: 1, maxLength: 20 }),
      (specs, requests) => {
        const routes = specs.map((s, i) => {
          const r: HttpRouteConfig = {
            ...route(`r${i}`),
            hosts: s.hosts?.map(hostPattern) ?? null,
            path: s.path as PathMatch | null,
            stripPrefix: s.strip,
            rewritePrefix: s.rewrite,
          };
          return r;
        });
        const router = new HttpRouter(routes);
        for (const { host, path } of requests) {
          const expected = referenceMatch(routes, host, path);
          const actual = router.match(host, path);
          assert.equal(actual?.route.name, expected?.route.name, `${host} ${path}`);
          assert.equal(actual?.upstreamPath, expected?.upstreamPath, `${host} ${path}`);
          assert.deepEqual(router.explain(host, path).match, actual);
        }
      },
    ),
    { numRuns: 3000 },
  );
});
