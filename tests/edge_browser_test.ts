/**
 * A real browser through an `edge` route: headless Chromium loads a page whose stylesheet,
 * script and image come from the backend through edgemux, then the script calls an API with
 * `fetch()` and makes a WebSocket round trip, and writes what it saw into the page. The test
 * reads the page through the DevTools protocol (`--dump-dom` serialises the page at its load
 * event, before the script's own asynchronous work is done) and checks edgemux's request
 * records. A near miss checks that the SPKI pin alone is what makes Chromium trust the page.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { serveHttp } from "./_helpers/backends.ts";
import { spkiPinBase64 } from "./_helpers/certs.ts";
import { HEADLESS_CHROMIUM_FLAGS } from "./_helpers/chromium.ts";
import { startSingleEdge, type TestProxy } from "./_helpers/edgemux.ts";
import { run, startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

// A 1×1 PNG, so the script can check that the image really decoded (naturalWidth 1).
const PIXEL_PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

const PAGE = `<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>edgemux browser test</title>
  <link rel="stylesheet" href="/assets/style.css">
  <script src="/assets/app.js" defer></script>
</head>
<body>
  <img id="logo" src="/assets/logo.png" alt="logo">
  <p id="result">waiting</p>
</body>
</html>
`;

const STYLE = "#result { color: rgb(1, 2, 3); }\n";

// Runs after the load event so the stylesheet and image are in; then the API and WebSocket.
const SCRIPT = `
window.addEventListener("load", async () => {
  const out = document.getElementById("result");
  try {
    const css = getComputedStyle(out).color === "rgb(1, 2, 3)" ? "ok" : "missing";
    const img = document.getElementById("logo").naturalWidth === 1 ? "ok" : "missing";
    const api = await (await fetch("/api/answer", { headers: { "x-from": "page" } })).json();
    const ws = await new Promise((resolve, reject) => {
      const socket = new WebSocket("wss://" + location.host + "/ws", ["chat.v2"]);
      socket.onopen = () => socket.send("ping from the page");
      socket.onmessage = (e) => {
        resolve(e.data + " via " + socket.protocol);
        socket.close(1000, "done");
      };
      socket.onerror = () => reject(new Error("websocket failed"));
    });
    out.textContent = "css=" + css + " img=" + img + " api=" + api.answer + " ws=" + ws;
  } catch (e) {
    out.textContent = "error: " + e;
  }
});
`;

interface SiteBackend extends AsyncDisposable {
  port: number;
  /** Paths in the order requested. */
  paths: string[];
  /** WebSocket messages the backend received. */
  wsMessages: string[];
}

function startSiteBackend(): SiteBackend {
  const paths: string[] = [];
  const wsMessages: string[] = [];
  const text = (body: string, type: string) =>
    new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
  const server = serveHttp((req) => {
    const path = new URL(req.url).pathname;
    paths.push(path);
    switch (path) {
      case "/":
        return text(PAGE, "text/html; charset=utf-8");
      case "/assets/style.css":
        return text(STYLE, "text/css");
      case "/assets/app.js":
        return text(SCRIPT, "text/javascript");
      case "/assets/logo.png":
        return new Response(PIXEL_PNG.slice(), { headers: { "content-type": "image/png" } });
      case "/api/answer":
        return Response.json({ answer: req.headers.get("x-from") === "page" ? 42 : 0 });
      case "/ws": {
        const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "chat.v2" });
        socket.onmessage = (e) => {
          wsMessages.push(String(e.data));
          socket.send(`echo: ${e.data}`);
        };
        return response;
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  });
  return { port: server.port, paths, wsMessages, [Symbol.asyncDispose]: server.close };
}

function startProxy(backendPort: number): Promise<TestProxy> {
  return startSingleEdge(backendPort, { name: "site", sni: "*.example.test" });
}

const CHROMIUM_FLAGS = [
  ...HEADLESS_CHROMIUM_FLAGS,
  "--host-resolver-rules=MAP *.example.test 127.0.0.1",
];

/** Runs headless Chromium with `--dump-dom` on `url` and returns the serialised DOM. */
async function dumpDom(url: string, pin: string): Promise<string> {
  const chromium = requireTool("chromium", "chromium");
  await using profile = await makeTempDir("edgemux-chromium-");
  // run() kills the whole process group (Chromium's helpers too) when Chromium exits.
  const result = await run(chromium, [
    ...CHROMIUM_FLAGS,
    `--user-data-dir=${profile.path}`,
    `--ignore-certificate-errors-spki-list=${pin}`,
    "--dump-dom",
    url,
  ], { timeoutMs: 45_000 });
  equal(result.code, 0, `chromium failed:\n${result.stderr}`);
  return result.stdout;
}

/** The parts of the DevTools protocol this test uses. */
interface DevTools extends AsyncDisposable {
  call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Evaluates `expression` in the page and returns its value. */
  evaluate(expression: string): Promise<unknown>;
}

/**
 * Starts headless Chromium with remote debugging on a kernel-chosen port and attaches to its
 * first page. `--dump-dom` would serialise the page at its load event, before the script's
 * fetch and WebSocket have finished; DevTools lets the test wait for the page's own result.
 */
async function launchChromium(pin: string): Promise<DevTools> {
  const chromium = requireTool("chromium", "chromium");
  const profile = await makeTempDir("edgemux-chromium-");
  const browser = startProcess(chromium, [
    ...CHROMIUM_FLAGS,
    `--user-data-dir=${profile.path}`,
    `--ignore-certificate-errors-spki-list=${pin}`,
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "about:blank",
  ]);
  let socket: WebSocket | undefined;
  const dispose = async () => {
    socket?.close();
    await browser.stop();
    await profile[Symbol.asyncDispose]();
  };
  try {
    const announced = await browser.waitForOutput(
      /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//,
      20_000,
    );
    const debugPort = /:(\d+)\//.exec(announced)![1];
    let pageUrl: string | undefined;
    for (let i = 0; i < 50 && pageUrl === undefined; i++) {
      const targets = await (await fetch(`http://127.0.0.1:${debugPort}/json/list`)).json() as {
        type: string;
        webSocketDebuggerUrl: string;
      }[];
      pageUrl = targets.find((t) => t.type === "page")?.webSocketDebuggerUrl;
      if (pageUrl === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    if (pageUrl === undefined) throw new Error("Chromium opened no page");
    const ws = socket = new WebSocket(pageUrl);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot attach to ${pageUrl}`));
    });
    let nextId = 0;
    const waiting = new Map<number, (reply: Record<string, unknown>) => void>();
    ws.onmessage = (e) => {
      const reply = JSON.parse(String(e.data)) as { id?: number } & Record<string, unknown>;
      if (reply.id !== undefined) waiting.get(reply.id)?.(reply);
    };
    const call = (method: string, params: Record<string, unknown> = {}) => {
      const id = ++nextId;
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${method} got no answer`)), 10_000);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (reply.error) reject(new Error(`${method}: ${JSON.stringify(reply.error)}`));
          else resolve(reply.result as Record<string, unknown>);
        });
        ws.send(JSON.stringify({ id, method, params }));
      });
    };
    return {
      call,
      async evaluate(expression) {
        const r = await call("Runtime.evaluate", { expression, returnByValue: true });
        return (r.result as { value?: unknown }).value;
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

Deno.test("headless Chromium loads a page, its assets, an API call and a WebSocket through edge", async () => {
  await using site = startSiteBackend();
  await using edgemux = await startProxy(site.port);
  const port = edgemux.port("https");
  await using browser = await launchChromium(spkiPinBase64("edge-wildcard"));

  await browser.call("Page.navigate", { url: `https://www.example.test:${port}/` });
  let result: unknown = null;
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    result = await browser.evaluate(`document.getElementById("result")?.textContent ?? null`);
    if (typeof result === "string" && result !== "waiting") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  equal(result, "css=ok img=ok api=42 ws=echo: ping from the page via chat.v2");
  deepEqual(site.wsMessages, ["ping from the page"]);
  const dom = await browser.evaluate("document.documentElement.outerHTML");
  match(String(dom), /<title>edgemux browser test<\/title>/);

  const byPath = (p: string) => edgemux.requests.filter((r) => r.path === p);
  for (const asset of ["/", "/assets/style.css", "/assets/app.js", "/assets/logo.png"]) {
    const recs = byPath(asset);
    ok(recs.length >= 1, `edgemux has no record of ${asset}`);
    for (const r of recs) {
      equal(r.http, "h2", `${asset} was fetched over ${r.http}`);
      equal(r.status, 200);
      equal(r.host, "www.example.test");
      equal(r.route, "site");
    }
  }
  equal(
    new Set(["/", "/assets/style.css", "/assets/app.js"].map((p) => byPath(p)[0].conn)).size,
    1,
    "the page and its assets shared one HTTP/2 connection",
  );
  equal(byPath("/api/answer")[0]?.http, "h2");
  // Chromium opens WebSocket on an HTTP/1.1 connection of its own, since the server offers no
  // RFC 8441 extended CONNECT; the record is written when that tunnel closes.
  for (let i = 0; i < 100 && byPath("/ws").length === 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const ws = byPath("/ws")[0];
  equal(ws?.status, 101);
  equal(ws?.http, "h1");
});

Deno.test("headless Chromium refuses edgemux's certificate when the pin does not match", async () => {
  await using site = startSiteBackend();
  await using edgemux = await startProxy(site.port);
  const port = edgemux.port("https");
  // The pin of another certificate from the same CA: trust must come from the pin alone.
  const dom = await dumpDom(`https://www.example.test:${port}/`, spkiPinBase64("prometheus"));
  ok(!dom.includes("css=ok"), "the page loaded although its certificate was not trusted");
  equal(site.paths.length, 0, `the backend was reached: ${site.paths.join(", ")}`);
});
