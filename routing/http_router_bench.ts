// Cost of routing one HTTP request: HttpRouter.match() on a table of 50 routes over 10 hosts,
// and normalizePath(), which runs before it on every request.
// Run: deno bench routing/http_router_bench.ts (no permissions needed).
import type { HostPattern, HttpRouteConfig, PathMatch } from "../config/types.ts";
import { HttpRouter } from "./http_router.ts";
import { normalizePath } from "./path.ts";

function route(
  name: string,
  hosts: HostPattern[] | null,
  path: PathMatch | null,
  stripPrefix = false,
): HttpRouteConfig {
  return {
    name,
    hosts,
    path,
    action: { kind: "backend", backend: name },
    stripPrefix,
    rewritePrefix: null,
    requestHeaders: { remove: [], set: [], add: [] },
    responseHeaders: { remove: [], set: [], add: [] },
    position: { file: "bench.yaml", line: 1, column: 1 },
  };
}

// 10 hosts (8 exact names, 2 wildcards) with 5 routes each: an exact path, three nested
// prefixes (one stripping) and a pathless catch-all for the host. Written in the reverse of
// precedence order, so the constructor's sort does real work.
const routes: HttpRouteConfig[] = [];
for (let h = 0; h < 10; h++) {
  const pattern: HostPattern = h < 8
    ? { kind: "exact", name: `app${h}.example.test` }
    : { kind: "wildcard", suffix: `tenants${h}.example.test` };
  const hosts = [pattern];
  routes.push(route(`h${h}-any`, hosts, null));
  routes.push(route(`h${h}-api`, hosts, { kind: "prefix", value: "/api" }));
  routes.push(route(`h${h}-api-v2`, hosts, { kind: "prefix", value: "/api/v2" }, true));
  routes.push(route(`h${h}-api-v2-users`, hosts, { kind: "prefix", value: "/api/v2/users/" }));
  routes.push(route(`h${h}-health`, hosts, { kind: "exact", value: "/healthz" }));
}
const router = new HttpRouter(routes);

function check(host: string, path: string, name: string | null): void {
  const got = router.match(host, path)?.route.name ?? null;
  if (got !== name) throw new Error(`bench request ${host} ${path} matched ${got}, not ${name}`);
}
check("app5.example.test", "/api/v2/users/42?fields=name", "h5-api-v2-users");
check("app5.example.test", "/api/v2/orders", "h5-api-v2");
check("App5.Example.Test:8443", "/healthz", "h5-health");
check("acme.tenants9.example.test", "/api/x", "h9-api");
check("unknown.test", "/", null);

Deno.bench("HttpRouter.match() exact host, longest of 3 prefixes", { group: "match" }, () => {
  router.match("app5.example.test", "/api/v2/users/42?fields=name");
});

Deno.bench(
  "HttpRouter.match() exact host, prefix with strip",
  { group: "match", baseline: true },
  () => {
    router.match("app5.example.test", "/api/v2/orders");
  },
);

Deno.bench("HttpRouter.match() host with port and capitals, exact path", { group: "match" }, () => {
  router.match("App5.Example.Test:8443", "/healthz");
});

Deno.bench("HttpRouter.match() wildcard host", { group: "match" }, () => {
  router.match("acme.tenants9.example.test", "/api/x");
});

Deno.bench("HttpRouter.match() unknown host, no route", { group: "match" }, () => {
  router.match("unknown.test", "/");
});

Deno.bench("new HttpRouter() with 50 routes", () => {
  new HttpRouter(routes);
});

Deno.bench("normalizePath() already normal", { group: "path" }, () => {
  normalizePath("/api/v2/users/42?fields=name");
});

Deno.bench("normalizePath() with encodings and dot-segments", { group: "path" }, () => {
  normalizePath("/static/%7euser/../img//a%3fb.png?v=3");
});
