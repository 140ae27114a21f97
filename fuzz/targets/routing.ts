/**
 * Targets `http_router` (`HttpRouter.match` and `explain` from routing/http_router.ts, on random
 * route tables) and `normalize_path` (`normalizePath` from routing/path.ts).
 *
 * Both are compared with small reference implementations written from the documentation
 * rather than from the code: the precedence rules in http_router.ts's module comment and in
 * docs/config.md, and RFC 3986 §6.2.2 and §5.2.4 (the buffer algorithm, as the RFC words it).
 *
 * @module
 */

import { type HttpRouteMatch, HttpRouter, normalizeHost } from "../../routing/http_router.ts";
import { normalizePath, type PathNormalization } from "../../routing/path.ts";
import type { HostPattern, HttpRouteConfig, PathMatch } from "../../config/types.ts";
import { check, type FuzzCase, type FuzzTarget, type ScalingFamily } from "../harness.ts";
import type { Rng } from "../rng.ts";

// ---------------------------------------------------------------------------------------------
// normalizePath.

/** Path segments worth combining: dot-segments in every spelling, encodings good and bad. */
const SEGMENTS = [
  "",
  ".",
  "..",
  "...",
  "%2e",
  "%2E",
  "%2e%2e",
  ".%2e",
  "%2E.",
  "a",
  "b",
  "admin",
  "%41",
  "%61dmin",
  "%7e",
  "%7E",
  "~",
  "%2f",
  "%2F",
  "%25",
  "%252e",
  "%00",
  "%",
  "%4",
  "%zz",
  "%G1",
  "%c3%a9",
  "é",
  "😀",
  "\ud800",
  "\u0000",
  " ",
  "\t",
  "\x7f",
  "\x1f",
  ";",
  ";a=b",
  "#frag",
  "a?b",
  "?",
  "%3F",
  "%2e%2E%2f",
  "\\..",
  "..\\",
  "..;",
  ".;x",
  "%2e%2e;",
  "%5c",
  "%5C..",
  "%0a",
  "%7F",
  "%C0%AE",
  "a.",
];

/** A request target: usually `/segments[?query]`, sometimes not origin-form at all. */
export function randomTarget(rng: Rng): string {
  const parts: string[] = [];
  const n = rng.int(0, 8);
  for (let i = 0; i < n; i++) {
    parts.push(rng.chance(0.8) ? rng.pick(SEGMENTS) : randomText(rng, rng.int(1, 6)));
  }
  let t = (rng.chance(0.95) ? "/" : rng.pick(["", "*", "http://a/", "a", "."])) +
    parts.join(rng.chance(0.9) ? "/" : "//");
  if (rng.chance(0.3)) t += "?" + randomQuery(rng);
  if (rng.chance(0.05)) t += rng.pick(["/", "/.", "/..", "%", "%2"]);
  return t;
}

function randomQuery(rng: Rng): string {
  return rng.pick(["", "a=1", "../x", "%zz", "a?b", "x=%2e%2e", "é", "a b", "\u0000", "/./"]) +
    (rng.chance(0.2) ? randomText(rng, rng.int(1, 10)) : "");
}

function randomText(rng: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = rng.float();
    if (r < 0.6) s += String.fromCharCode(0x21 + rng.below(94));
    else if (r < 0.8) s += rng.pick(["/", ".", "%", "?"]);
    else s += String.fromCharCode(rng.below(0x800));
  }
  return s;
}

function hexValue(c: string): number {
  const i = "0123456789abcdef".indexOf(c.toLowerCase());
  return c.length === 1 ? i : -1;
}

/** RFC 3986 §5.2.4, step by step as the RFC writes it. */
export function rfcRemoveDotSegments(path: string): string {
  let input = path;
  let output = "";
  const dropLast = () => {
    const i = output.lastIndexOf("/");
    output = i < 0 ? "" : output.slice(0, i);
  };
  while (input.length > 0) {
    if (input.startsWith("../")) input = input.slice(3);
    else if (input.startsWith("./")) input = input.slice(2);
    else if (input.startsWith("/./")) input = input.slice(2);
    else if (input === "/.") input = "/";
    else if (input.startsWith("/../")) {
      input = input.slice(3);
      dropLast();
    } else if (input === "/..") {
      input = "/";
      dropLast();
    } else if (input === "." || input === "..") input = "";
    else {
      const next = input.indexOf("/", input.startsWith("/") ? 1 : 0);
      const seg = next < 0 ? input : input.slice(0, next);
      output += seg;
      input = input.slice(seg.length);
    }
  }
  return output;
}

/**
 * normalizePath as path.ts's module comment describes it, written independently: RFC 3986
 * §6.2.2 and §5.2.4 for `pass`; for `strict` also merged slashes and the refusals.
 */
export function referenceNormalizePath(target: string, mode: PathNormalization): string | null {
  const strict = mode === "strict";
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  if (!path.startsWith("/")) return null;
  for (const ch of target) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c >= 0x7f || ch === "#") return null;
  }
  if (strict && path.includes("\\")) return null;
  let decoded = "";
  for (let i = 0; i < path.length; i++) {
    if (path[i] !== "%") {
      decoded += path[i];
      continue;
    }
    const hi = hexValue(path.charAt(i + 1));
    const lo = hexValue(path.charAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    if (byte === 0) return null;
    if (strict && (byte === 0x2f || byte === 0x5c || byte < 0x20 || byte === 0x7f)) return null;
    const ch = String.fromCharCode(byte);
    decoded += /[A-Za-z0-9\-._~]/.test(ch) ? ch : "%" + path.slice(i + 1, i + 3).toUpperCase();
    i += 2;
  }
  if (strict) decoded = decoded.replace(/\/+/g, "/");
  const out = rfcRemoveDotSegments(decoded);
  if (strict && out.split("/").some((seg) => /^\.\.?;/.test(seg))) return null;
  return out + query;
}

function checkNormalized(target: string, mode: PathNormalization, r: string | null): string {
  const ref = referenceNormalizePath(target, mode);
  check(
    r === ref,
    () =>
      `normalizePath(${JSON.stringify(target)}, ${mode}) = ${JSON.stringify(r)}, ` +
      `the reference gives ${JSON.stringify(ref)}`,
  );
  if (r === null) return "refused";
  check(r.startsWith("/"), () => `result ${JSON.stringify(r)} does not start with /`);
  const again = normalizePath(r, mode);
  check(
    again === r,
    () =>
      `not idempotent: ${JSON.stringify(target)} → ${JSON.stringify(r)} → ` +
      JSON.stringify(again),
  );
  const q = target.indexOf("?");
  if (q >= 0) check(r.endsWith(target.slice(q)), "query not kept byte for byte");
  return r === target ? "already normal" : "normalised";
}

const enc = new TextEncoder();

function pathCase(s: string): FuzzCase {
  return {
    run() {
      const strict = normalizePath(s, "strict");
      const passed = normalizePath(s, "pass");
      return () => {
        const a = checkNormalized(s, "strict", strict);
        const b = checkNormalized(s, "pass", passed);
        return a === b ? a : `${a}, ${b} with pass`;
      };
    },
    // JSON keeps lone surrogates, which UTF-8 cannot.
    bytes: () => enc.encode(JSON.stringify(s)),
  };
}

const PATH_SCALING: ScalingFamily[] = [
  {
    name: "dot-segments",
    make(_rng, size) {
      const t = "/a/b/..".repeat(Math.ceil(size / 7)).slice(0, size);
      return { bytes: t.length, run: () => void normalizePath(t) };
    },
  },
  {
    name: "percent-encoded letters",
    make(_rng, size) {
      const t = "/%41%2f%7e".repeat(Math.ceil(size / 10)).slice(0, size);
      return { bytes: t.length, run: () => void normalizePath(t) };
    },
  },
  {
    name: "random segments",
    make(rng, size) {
      let t = "";
      while (t.length < size) t += "/" + rng.pick(SEGMENTS.slice(0, 20));
      return { bytes: t.length, run: () => void normalizePath(t) };
    },
  },
];

/** The `normalize_path` target. */
export const normalizePathTarget: FuzzTarget = {
  name: "normalize_path",
  summary: "normalizePath(target, strict | pass): never throws, equals a reference written " +
    "from RFC 3986 and path.ts's rules, idempotent, query kept",
  share: 0.15,
  maxMs: 20,
  setup() {},
  generate: (rng) => pathCase(randomTarget(rng)),
  replay: (file) => pathCase(JSON.parse(new TextDecoder().decode(file))),
  scaling: PATH_SCALING,
};

// ---------------------------------------------------------------------------------------------
// HttpRouter.

const EXACT_HOSTS = [
  "a.test",
  "b.a.test",
  "x.b.a.test",
  "api.example.test",
  "example.test",
  "[::1]",
  "127.0.0.1",
  "xn--bcher-kva.test",
  "a_b.test",
];
const WILDCARD_SUFFIXES = ["a.test", "test", "example.test", "b.a.test"];
const VALID_PATHS = [
  "/",
  "/api",
  "/api/",
  "/api/v1",
  "/apix",
  "/a",
  "/a/b",
  "/a/b/",
  "/%2F",
  "/~user",
  "/é",
  "/a//b",
  "//",
];
/** Values config validation would refuse; the router must still not throw on them. */
const ODD_PATHS = ["", "api", "/a?b", "?", "/a#b", "/a/../b", "\u0000", "/\ud800"];
const REWRITES = ["/", "/v2", "/v2/", "/x/y/", "", "v2"];

/** A route table, and whether it is one config validation could have produced. */
function randomRoutes(rng: Rng): { routes: HttpRouteConfig[]; valid: boolean } {
  const routes: HttpRouteConfig[] = [];
  let valid = true;
  const n = rng.int(0, 10);
  for (let i = 0; i < n; i++) {
    let hosts: HostPattern[] | null = null;
    if (rng.chance(0.7)) {
      hosts = [];
      for (let k = rng.int(1, 3); k > 0; k--) {
        hosts.push(
          rng.chance(0.7)
            ? { kind: "exact", name: rng.pick(EXACT_HOSTS) }
            : rng.chance(0.6)
            ? { kind: "wildcard", suffix: rng.pick(WILDCARD_SUFFIXES) }
            : { kind: "anyDepth", suffix: rng.pick(WILDCARD_SUFFIXES) },
        );
      }
    }
    let path: PathMatch | null = null;
    if (rng.chance(0.75)) {
      const odd = rng.chance(0.05);
      if (odd) valid = false;
      path = {
        kind: rng.chance(0.35) ? "exact" : "prefix",
        value: odd ? rng.pick(ODD_PATHS) : rng.pick(VALID_PATHS),
      };
    }
    let stripPrefix = false;
    let rewritePrefix: string | null = null;
    if (rng.chance(0.3)) {
      if (rng.chance(0.5)) stripPrefix = true;
      else rewritePrefix = rng.pick(REWRITES);
      if (rewritePrefix === "" || rewritePrefix === "v2") valid = false;
    }
    routes.push({
      name: `r${i}`,
      hosts,
      path,
      action: { kind: "backend", backend: `b${i}` },
      stripPrefix,
      rewritePrefix,
      requestHeaders: { remove: [], set: [], add: [] },
      responseHeaders: { remove: [], set: [], add: [] },
      position: { file: "fuzz.yaml", line: 1, column: 1 },
    });
  }
  return { routes, valid };
}

function randomHost(rng: Rng): string | null {
  const r = rng.float();
  if (r < 0.05) return null;
  if (r < 0.15) {
    return rng.pick(["", ":", ":80", "[", "[::1", "]", "::1", "a..", ".", "a.test..", "[::1]."]);
  }
  if (r < 0.2) return randomText(rng, rng.int(0, 20));
  let h = rng.chance(0.7)
    ? rng.pick(EXACT_HOSTS)
    : rng.pick(["www", "x", "b", "é", "a"]) + "." + rng.pick(WILDCARD_SUFFIXES);
  if (rng.chance(0.2)) h = h.toUpperCase();
  if (rng.chance(0.15)) h += ".";
  if (rng.chance(0.25)) h += ":" + rng.pick(["443", "8443", "0", "", "99999", "x"]);
  return h;
}

function randomRequestPath(rng: Rng): string {
  if (rng.chance(0.5)) {
    const t = rng.pick(VALID_PATHS) + rng.pick(["", "/", "/x", "x", "?q=1", "/v1/x?a=/b", "?"]);
    return normalizePath(t) ?? t;
  }
  const t = randomTarget(rng);
  return rng.chance(0.8) ? normalizePath(t) ?? t : t;
}

/**
 * The host tier a route is in for `host`, as [tier, rank within it]: [0] exact, [1] `*.`,
 * [2, -suffix length] `**.` (a longer suffix first), [3] no host; or null.
 */
function tierOf(route: HttpRouteConfig, host: string | null): number[] | null {
  if (route.hosts === null) return [3, 0];
  if (host === null) return null;
  if (route.hosts.some((p) => p.kind === "exact" && p.name === host)) return [0, 0];
  const dot = host.indexOf(".");
  if (dot <= 0) return null;
  const suffix = host.slice(dot + 1);
  if (route.hosts.some((p) => p.kind === "wildcard" && p.suffix === suffix)) return [1, 0];
  let best: number[] | null = null;
  for (const p of route.hosts) {
    if (p.kind !== "anyDepth") continue;
    const labels = host.split(".");
    const n = p.suffix.split(".").length;
    const front = labels.slice(0, labels.length - n);
    if (front.length === 0 || front.some((l) => l === "")) continue;
    if (labels.slice(labels.length - n).join(".") !== p.suffix) continue;
    if (best === null || -p.suffix.length < best[1]) best = [2, -p.suffix.length];
  }
  return best;
}

/** The PathMatch rules of config/types.ts, on the path without its query. */
function pathMatches(p: PathMatch | null, path: string): boolean {
  if (p === null) return true;
  const q = path.indexOf("?");
  const only = q < 0 ? path : path.slice(0, q);
  if (p.kind === "exact") return only === p.value;
  if (p.value.endsWith("/")) return only.startsWith(p.value);
  return only === p.value || only.startsWith(p.value + "/");
}

/** The route the documented precedence picks. */
export function referenceRoute(
  routes: readonly HttpRouteConfig[],
  host: string | null,
  path: string,
): HttpRouteConfig | null {
  const name = host === null ? null : normalizeHost(host);
  let best: { key: number[]; route: HttpRouteConfig } | null = null;
  routes.forEach((route, order) => {
    const tier = tierOf(route, name);
    if (tier === null || !pathMatches(route.path, path)) return;
    const p = route.path;
    const rank = p === null ? 2 : p.kind === "exact" ? 0 : 1;
    const key = [...tier, rank, p?.kind === "prefix" ? -p.value.length : 0, order];
    if (best === null || compareKeys(key, best.key) < 0) best = { key, route };
  });
  return best === null ? null : (best as { route: HttpRouteConfig }).route;
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The upstream path of docs/config.md: strip or rewrite the matched prefix, keep the query. */
export function referenceUpstream(route: HttpRouteConfig, path: string): string {
  const p = route.path;
  const to = route.rewritePrefix ?? (route.stripPrefix ? "/" : null);
  if (to === null || p === null || p.kind !== "prefix") return path;
  const q = path.indexOf("?");
  const only = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? "" : path.slice(q);
  const matched = p.value.endsWith("/") ? p.value.slice(0, -1) : p.value;
  const rest = only.slice(matched.length);
  let out = rest === "" ? to : to.replace(/\/$/, "") + rest;
  if (out === "") out = "/";
  return out + query;
}

interface RouterInput {
  routes: HttpRouteConfig[];
  valid: boolean;
  requests: [host: string | null, path: string][];
}

type Answer = [HttpRouteMatch | null, { match: HttpRouteMatch | null; reason: string }];

/** Builds the router and asks it every request, with match() and explain(). */
function route(input: RouterInput): Answer[] {
  const router = new HttpRouter(input.routes);
  return input.requests.map(([host, path]) => [
    router.match(host, path),
    router.explain(host, path),
  ]);
}

function checkRouter(input: RouterInput, answers: Answer[]): string {
  let verdict = "no match";
  for (const [i, [host, path]] of input.requests.entries()) {
    const [m, e] = answers[i];
    check(
      typeof e.reason === "string" && e.reason.length > 0,
      "explain() without a reason",
    );
    check(
      (m === null && e.match === null) ||
        (m !== null && e.match !== null && m.route === e.match.route &&
          m.upstreamPath === e.match.upstreamPath),
      () => `match() and explain() disagree for ${JSON.stringify([host, path])}`,
    );
    if (m !== null) {
      verdict = "match";
      check(input.routes.includes(m.route), "match() returned a route not in the table");
      check(typeof m.upstreamPath === "string", "upstreamPath is not a string");
    }
    if (!input.valid) continue;
    const ref = referenceRoute(input.routes, host, path);
    check(
      (m?.route ?? null) === ref,
      () =>
        `${JSON.stringify([host, path])} takes ${m?.route.name ?? "no route"}, ` +
        `the documented precedence picks ${ref?.name ?? "no route"}`,
    );
    if (m !== null) {
      const up = referenceUpstream(m.route, path);
      check(
        m.upstreamPath === up,
        () =>
          `${JSON.stringify([host, path])} via ${m.route.name} goes upstream as ` +
          `${JSON.stringify(m.upstreamPath)}, documented: ${JSON.stringify(up)}`,
      );
    }
  }
  return verdict;
}

function routerCase(input: RouterInput): FuzzCase {
  return {
    run() {
      const answers = route(input);
      return () => checkRouter(input, answers);
    },
    bytes: () => enc.encode(JSON.stringify(input)),
  };
}

function generateRouter(rng: Rng): RouterInput {
  const { routes, valid } = randomRoutes(rng);
  const requests: [string | null, string][] = [];
  for (let i = rng.int(1, 8); i > 0; i--) requests.push([randomHost(rng), randomRequestPath(rng)]);
  return { routes, valid, requests };
}

const ROUTER_SCALING: ScalingFamily[] = [
  {
    name: "long request paths",
    make(rng, size) {
      const router = new HttpRouter(randomRoutes(rng).routes);
      const path = "/api" + "/segment".repeat(Math.ceil(size / 8)).slice(0, size - 4);
      return { bytes: path.length, run: () => void router.match("a.test", path) };
    },
  },
  {
    name: "long hosts",
    make(rng, size) {
      const router = new HttpRouter(randomRoutes(rng).routes);
      const host = "x.".repeat(Math.ceil(size / 2)).slice(0, size - 6) + "a.test";
      return { bytes: host.length, run: () => void router.match(host, "/api") };
    },
  },
];

/** The `http_router` target. */
export const httpRouterTarget: FuzzTarget = {
  name: "http_router",
  summary: "HttpRouter.match / explain on random route tables: never throws, agrees with " +
    "explain(), and with the documented precedence and strip/rewrite rules",
  share: 0.15,
  maxMs: 20,
  setup() {},
  generate: (rng) => routerCase(generateRouter(rng)),
  replay: (file) => routerCase(JSON.parse(new TextDecoder().decode(file))),
  scaling: ROUTER_SCALING,
};
