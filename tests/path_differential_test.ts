/**
 * The path differential test (docs/paths.md): a corpus of tricky request targets goes through
 * edgemux to a real nginx that has one `location` per edgemux HTTP route, each answering with its
 * own name. For every target, the route edgemux chose must be the location nginx served, or
 * edgemux must have refused the request with 400. The same corpus is also sent to nginx directly,
 * as it came from the client: where edgemux routed a target, nginx on its own must serve the same
 * location (or refuse it), so edgemux reads each path the way nginx does, not merely forwards
 * something nginx then agrees with.
 *
 * Both front ends are covered: HTTP/1.1 written byte for byte on a TLS socket, and HTTP/2 with a
 * `:path` sent as a raw HPACK literal (tests/_helpers/h2_raw.ts), since Deno's HTTP/2 server
 * (hyper) is the one that hands edgemux the path there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { EDGE_CERTIFICATES, readCert } from "./_helpers/certs.ts";
import { startEdgemux, type TestProxy } from "./_helpers/edgemux.ts";
import { rawH2Request, type RawH2Result } from "./_helpers/h2_raw.ts";
import {
  type MirroredRoute,
  type Nginx,
  parseMirrorAnswer,
  startNginxRouteMirror,
} from "./_helpers/nginx.ts";
import { connectTlsByName } from "./_helpers/websocket.ts";
import { normalizePath } from "../routing/path.ts";

const HOST = "app.example.test";
const CA = [readCert("ca")];

const ROUTES: MirroredRoute[] = [
  { name: "admin", pathPrefix: "/admin" },
  { name: "public", pathPrefix: "/public/" },
  { name: "exact", path: "/exact" },
  { name: "other" },
];

function edgemuxConfig(nginxPort: number, pathNormalization: "strict" | "pass" | null): string {
  const routes = ROUTES.map((r) => {
    const match = r.path !== undefined
      ? `path: "${r.path}", `
      : r.pathPrefix !== undefined
      ? `path_prefix: "${r.pathPrefix}", `
      : "";
    return `          - { name: ${r.name}, ${match}backend: nginx, ` +
      `request_headers: { set: { X-Edgemux-Route: ${r.name} } } }`;
  });
  return `
version: 1
${EDGE_CERTIFICATES}
${pathNormalization === null ? "" : `http: { path_normalization: ${pathNormalization} }`}
backends:
  nginx: { servers: ["127.0.0.1:${nginxPort}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - name: web
        sni: "${HOST}"
        edge:
          http:
${routes.join("\n")}
`;
}

// ---------------------------------------------------------------------------------------------
// The corpus.

/** The paths of the original report: each was routed as "not admin" while nginx served admin. */
const REPORTED = [
  "//admin",
  "///admin/x",
  "/admin%2Fsecret",
  "/%2fadmin",
  "/public%2f..%2fadmin",
  "/public/%2e%2e%2fadmin",
  "/x/..%2fadmin",
];

/** Targets written out by hand, one or more per class of trick. */
const HANDWRITTEN = [
  ...REPORTED,
  // Plain, and near misses of each route.
  "/",
  "/admin",
  "/admin/",
  "/admin/x",
  "/administrator",
  "/adminx",
  "/ADMIN",
  "/public/",
  "/public",
  "/public/x",
  "/exact",
  "/exact/",
  "/exactx",
  // Dot-segments, plain and encoded, at the root and above it.
  "/./admin",
  "/admin/../x",
  "/admin/./x",
  "/admin/..",
  "/admin/.",
  "/public/../admin",
  "/public/%2e%2e/admin",
  "/public/%2E%2E/admin",
  "/public/.%2e/admin",
  "/public/%2e./admin",
  "/%2e/admin",
  "/x/../../admin",
  "/../admin",
  "/%2e%2e/admin",
  "/x/../exact",
  "/exact/.",
  // Encoded and raw backslashes.
  "/admin%5csecret",
  "/%5Cadmin",
  "/public%5c..%5cadmin",
  "/public\\..\\admin",
  "/admin\\x",
  "/x\\..\\admin",
  // ;params.
  "/admin;x",
  "/admin;/x",
  "/admin/;x",
  "/;/admin",
  "/public/..;/admin",
  "/public;x/../admin",
  "/.;/admin",
  "/exact;x",
  // NUL and other control characters, encoded.
  "/admin%00",
  "/public%00/../admin",
  "/admin%00.html",
  "/admin%0a",
  "/admin%09x",
  "/admin%7f",
  "/admin%0d%0aX-Injected:%201",
  // Overlong and invalid UTF-8 escapes.
  "/%c0%ae%c0%ae/admin",
  "/public/%c0%ae%c0%ae/admin",
  "/%c0%afadmin",
  "/%e0%80%afadmin",
  "/%ff/admin",
  "/admin%c0",
  "/admin/%c0%af..%c0%af",
  // Trailing dots.
  "/admin.",
  "/admin./x",
  "/admin..",
  "/public/x.",
  "/exact.",
  // Queries that mention /admin.
  "/public?/admin",
  "/?x=/admin",
  "/public/x?../../admin",
  "/?%2fadmin",
  "/x?/../admin",
  // Fragments.
  "/admin#x",
  "/public#/../admin",
  "/x#/admin",
  // Other encodings.
  "/admin%3F",
  "/admin%3fx",
  "/admin%23",
  "/admin%20",
  "/admin%3bx",
  "/admin%2e",
  "/%2561dmin",
  "/adm%69n",
  "/%61%64%6d%69%6e",
  "/%41DMIN",
  "/admin%252F",
  "/admin%25",
  "/exac%74",
  "/exac%74?x",
  // Bad percent-encodings.
  "/admin%",
  "/admin%zz",
  "/%2",
  "/admin%g0",
  // Bytes that are not visible ASCII (refused by the parser, or by hyper on HTTP/2).
  "/admin\u00e9",
  "/admin\u00c3\u00a9", // "é" in UTF-8, one byte per character here
  "/\u00c4\u0080", // U+0100 in UTF-8
  "/admin x",
  "/admin\tx",
];

/** Absolute-form targets: HTTP/1.1 only (an HTTP/2 `:path` cannot carry one). */
const ABSOLUTE_FORM = [
  `https://${HOST}/admin`,
  `https://${HOST}//admin`,
  `http://${HOST}/public/../admin`,
  `https://${HOST}/%2fadmin`,
  `https://${HOST}/public/%2e%2e/admin?x=1`,
  `https://${HOST}`,
  `https://${HOST}?/admin`,
];

/** The generated classes: each route's path spelt in every way a class of trick allows. */
function generated(): string[] {
  const out: string[] = [];
  const bases = ["/admin", "/admin/x", "/public/x", "/exact", "/x/y"];
  for (const base of bases) {
    // Repeated slashes at every position (and at the end).
    for (let i = 0; i <= base.length; i++) {
      if (i === base.length || base[i] === "/") {
        out.push(base.slice(0, i) + "/" + base.slice(i), base.slice(0, i) + "//" + base.slice(i));
      }
    }
    // Each letter percent-encoded, in lower- and uppercase hex.
    for (let i = 0; i < base.length; i++) {
      const c = base[i];
      if (!/[a-z]/.test(c)) continue;
      const hex = c.charCodeAt(0).toString(16);
      out.push(base.slice(0, i) + "%" + hex + base.slice(i + 1));
      out.push(base.slice(0, i) + "%" + hex.toUpperCase() + base.slice(i + 1));
    }
    // Each "/" replaced by an encoded slash or backslash, in both cases, or a raw backslash.
    for (let i = 1; i < base.length; i++) {
      if (base[i] !== "/") continue;
      for (const sep of ["%2f", "%2F", "%5c", "%5C", "\\"]) {
        out.push(base.slice(0, i) + sep + base.slice(i + 1));
      }
    }
    // A detour through another directory, with every spelling of "..".
    for (const dots of ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2E.", "..;", ".%2E"]) {
      out.push(`/public/${dots}${base}`, `/x/y/${dots}/..${base}`);
    }
    // "." in every spelling, and a trailing one.
    for (const dot of [".", "%2e", "%2E"]) out.push(`/${dot}${base}`, `${base}/${dot}`);
  }
  return out;
}

const CORPUS = [...new Set([...HANDWRITTEN, ...generated()])];

// ---------------------------------------------------------------------------------------------
// Clients.

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** An HTTP/1.1 response, status and body, read to EOF. */
interface RawResponse {
  status: number;
  body: string;
}

async function readResponse(conn: Deno.Conn, what: string): Promise<RawResponse> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(16 * 1024);
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch {
    // Closed by the timer, or reset: judged by what arrived.
  } finally {
    clearTimeout(timer);
  }
  const text = new TextDecoder("latin1").decode(
    chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array(0)),
  );
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  if (m === null) throw new Error(`${what}: no HTTP/1.1 response: ${JSON.stringify(text)}`);
  const bodyStart = text.indexOf("\r\n\r\n");
  return { status: Number(m[1]), body: bodyStart < 0 ? "" : text.slice(bodyStart + 4) };
}

function requestBytes(target: string): Uint8Array {
  return latin1(`GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
}

/** One request over HTTP/1.1 through edgemux, the request line written as is. */
async function viaEdgemuxH1(port: number, target: string): Promise<RawResponse> {
  const { conn } = await connectTlsByName({ port, serverName: HOST, caCerts: CA });
  try {
    await conn.write(requestBytes(target));
    return await readResponse(conn, `edgemux ${JSON.stringify(target)}`);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** The same request straight to nginx, in plain text. */
async function direct(nginx: Nginx, target: string): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: nginx.port });
  try {
    await conn.write(requestBytes(target));
    return await readResponse(conn, `nginx ${JSON.stringify(target)}`);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Runs `fn` over `items`, `width` at a time. */
async function eachLimited<T>(items: T[], width: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// The verdicts.

/** What happened to one target. */
type Verdict =
  | { kind: "routed"; route: string; requestUri: string }
  | { kind: "refused"; how: string };

/** The path part of a target, as normalizePath sees it (absolute-form: after the authority). */
function originPath(target: string): string {
  const m = /^https?:\/\/[^/?]*(.*)$/.exec(target);
  if (m === null) return target;
  return m[1] === "" ? "/" : m[1].startsWith("?") ? "/" + m[1] : m[1];
}

/**
 * Checks one answer from edgemux: a refusal must be edgemux's own 400; anything else must come
 * from the nginx location of the route edgemux chose, with the normalised path forwarded.
 */
function judge(target: string, status: number | null, body: string): Verdict {
  const answer = parseMirrorAnswer(body);
  if (answer === null) {
    assert.equal(
      status,
      400,
      `${JSON.stringify(target)}: neither a refusal nor a mirror answer: ${status} ${body}`,
    );
    assert.equal(body, "Bad Request\n", `${JSON.stringify(target)}: a 400 not from edgemux`);
    return { kind: "refused", how: "400" };
  }
  assert.equal(status ?? 200, 200, JSON.stringify(target));
  assert.equal(
    answer.location,
    answer.route,
    `${JSON.stringify(target)}: edgemux chose route "${answer.route}", nginx served location ` +
      `"${answer.location}" for ${answer.requestUri}`,
  );
  return { kind: "routed", route: answer.route, requestUri: answer.requestUri };
}

/**
 * nginx, given the client's own target, serves the location edgemux routed it to, or refuses
 * it: edgemux and nginx read the path alike.
 */
async function assertNginxAgrees(nginx: Nginx, target: string, route: string): Promise<string> {
  const r = await direct(nginx, target);
  if (r.status === 400) return "nginx refuses";
  const answer = parseMirrorAnswer(r.body);
  assert.ok(answer, `nginx answered ${JSON.stringify(target)} with ${r.status} ${r.body}`);
  assert.equal(
    answer.location,
    route,
    `${JSON.stringify(target)}: edgemux routes it to "${route}", but nginx on its own serves ` +
      `location "${answer.location}"`,
  );
  return "nginx agrees";
}

function tally(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function summary(counts: Map<string, number>): string {
  return [...counts].sort().map(([k, n]) => `${k}: ${n}`).join(", ");
}

/** The outcomes the report's paths must have now. */
const EXPECTED_REPORTED: Record<string, string> = {
  "//admin": "admin",
  "///admin/x": "admin",
  "/admin%2Fsecret": "refused",
  "/%2fadmin": "refused",
  "/public%2f..%2fadmin": "refused",
  "/public/%2e%2e%2fadmin": "refused",
  "/x/..%2fadmin": "refused",
};

function outcome(v: Verdict): string {
  return v.kind === "routed" ? v.route : "refused";
}

async function withSetup(
  mode: "strict" | "pass" | null,
  fn: (proxy: TestProxy, nginx: Nginx) => Promise<void>,
): Promise<void> {
  await using nginx = await startNginxRouteMirror(ROUTES);
  await using proxy = await startEdgemux(edgemuxConfig(nginx.port, mode));
  await fn(proxy, nginx);
}

// ---------------------------------------------------------------------------------------------
// Tests.

Deno.test("path differential, HTTP/1.1: edgemux routes every target where nginx serves it, or refuses it", async () => {
  await withSetup(null, async (proxy, nginx) => {
    const port = proxy.port("https");
    const targets = [...CORPUS, ...ABSOLUTE_FORM];
    const counts = new Map<string, number>();
    const verdicts = new Map<string, Verdict>();
    await eachLimited(targets, 6, async (target) => {
      const r = await viaEdgemuxH1(port, target);
      const v = judge(target, r.status, r.body);
      verdicts.set(target, v);
      if (v.kind === "refused") {
        tally(counts, "refused");
        return;
      }
      tally(counts, `routed ${v.route}`);
      // What went upstream is the normalised path, byte for byte.
      assert.equal(v.requestUri, normalizePath(originPath(target)), JSON.stringify(target));
      tally(counts, await assertNginxAgrees(nginx, target, v.route));
    });
    for (const [target, want] of Object.entries(EXPECTED_REPORTED)) {
      assert.equal(outcome(verdicts.get(target)!), want, target);
    }
    console.log(`HTTP/1.1, ${targets.length} targets: ${summary(counts)}`);
    assert.ok((counts.get("refused") ?? 0) > 40 && (counts.get("routed admin") ?? 0) > 50);
  });
});

Deno.test("path differential, HTTP/2: edgemux routes every :path where nginx serves it, or refuses it", async () => {
  await withSetup(null, async (proxy, nginx) => {
    const port = proxy.port("https");
    const counts = new Map<string, number>();
    const verdicts = new Map<string, Verdict>();
    await eachLimited(CORPUS, 6, async (target) => {
      const r: RawH2Result = await rawH2Request({
        port,
        serverName: HOST,
        caCerts: CA,
        authority: HOST,
        path: target,
      });
      let v: Verdict;
      if (r.kind === "response") v = judge(target, r.status, r.body);
      else {
        // hyper refuses a malformed :path (RFC 9113 §8.3.1) itself, with a stream or connection
        // error, before edgemux sees it: only ever for bytes outside visible ASCII.
        assert.ok(
          r.kind !== "closed" && /[^\x21-\x7e]/.test(target),
          `${JSON.stringify(target)} ended with ${JSON.stringify(r)}`,
        );
        v = { kind: "refused", how: r.kind };
      }
      verdicts.set(target, v);
      if (v.kind === "refused") {
        tally(counts, `refused (${v.how})`);
        return;
      }
      tally(counts, `routed ${v.route}`);
      // hyper drops a fragment from :path; what is left is normalised and forwarded.
      const sent = target.includes("#") ? target.slice(0, target.indexOf("#")) : target;
      assert.equal(v.requestUri, normalizePath(sent), JSON.stringify(target));
      if (!target.includes("#")) tally(counts, await assertNginxAgrees(nginx, target, v.route));
    });
    for (const [target, want] of Object.entries(EXPECTED_REPORTED)) {
      assert.equal(outcome(verdicts.get(target)!), want, target);
    }
    console.log(`HTTP/2, ${CORPUS.length} targets: ${summary(counts)}`);
    assert.ok((counts.get("refused (400)") ?? 0) > 40 && (counts.get("routed admin") ?? 0) > 50);
  });
});

Deno.test("path_normalization: pass forwards //, %2F and \\ unchanged, so nginx may disagree", async () => {
  await withSetup("pass", async (proxy) => {
    const port = proxy.port("https");
    // Passed through as they came; nginx (merge_slashes on, %2F decoded) then serves admin while
    // edgemux routed "other": the disagreement this option accepts for backends that need it.
    for (const target of ["//admin", "/admin%2Fsecret", "/%2fadmin"]) {
      const r = await viaEdgemuxH1(port, target);
      const answer = parseMirrorAnswer(r.body);
      assert.ok(answer, `${target}: ${r.status} ${r.body}`);
      assert.equal(answer.route, "other", target);
      assert.equal(answer.location, "admin", target);
      assert.equal(answer.requestUri, normalizePath(target, "pass"), target);
    }
    const raw = await viaEdgemuxH1(port, "/x\\y");
    assert.equal(parseMirrorAnswer(raw.body)?.requestUri, "/x\\y");
    // What both modes refuse stays refused: NUL, bad escapes, fragments.
    for (const target of ["/admin%00", "/admin%zz", "/admin#x"]) {
      assert.equal((await viaEdgemuxH1(port, target)).status, 400, target);
    }
    // Dot-segments are still resolved and unreserved characters decoded.
    const dots = await viaEdgemuxH1(port, "/public/%2e%2e/%61dmin");
    assert.equal(parseMirrorAnswer(dots.body)?.route, "admin");
  });
});

Deno.test("a refused path is logged with the reason", async () => {
  await withSetup(null, async (proxy) => {
    const r = await viaEdgemuxH1(proxy.port("https"), "/public%2f..%2fadmin");
    assert.equal(r.status, 400);
    const record = await proxy.waitForRequest((q) => q.path === "/public%2f..%2fadmin");
    assert.equal(record.status, 400);
    assert.equal(record.end, "bad-request");
    assert.equal(record.detail, "invalid path: an encoded slash (%2F)");
  });
});

Deno.test("HTTP/2: a :path with UTF-8 bytes is refused with 400 and a true record", async () => {
  await withSetup(null, async (proxy) => {
    const port = proxy.port("https");
    // Deno's request URL holds the decoded text ("/Ā"); edgemux used to answer 500 for characters
    // above U+00FF (logging status 0) and forward the others.
    for (const path of ["/\u00c4\u0080", "/admin\u00c3\u00a9"]) {
      const r = await rawH2Request({ port, serverName: HOST, caCerts: CA, authority: HOST, path });
      assert.deepEqual(r, { kind: "response", status: 400, body: "Bad Request\n" }, path);
    }
    const record = await proxy.waitForRequest((q) => q.path === "/\u0100");
    assert.equal(record.status, 400);
    assert.equal(record.end, "bad-request");
    assert.equal(record.detail, "invalid path: a control character, space or non-ASCII byte");
  });
});

Deno.test("HTTP/2: a :path that is not origin-form is refused with 400, not misrouted", async () => {
  await withSetup(null, async (proxy) => {
    const port = proxy.port("https");
    // Deno joins "*" to the authority in the request URL; edgemux used to answer 421 for the
    // resulting host "app.example.test*".
    const r = await rawH2Request({
      port,
      serverName: HOST,
      caCerts: CA,
      authority: HOST,
      path: "*",
    });
    assert.deepEqual(r, { kind: "response", status: 400, body: "Bad Request\n" });
    const record = await proxy.waitForRequest((q) => q.status === 400);
    assert.equal(record.detail, "invalid path: not an origin-form path");
  });
});
