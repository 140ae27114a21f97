/**
 * WebSockets through an `edge` route: the HTTP/1.1 upgrade is forwarded to a Deno.serve backend
 * and, after its `101`, the connection becomes a byte relay. The client is the RFC 6455 client in
 * tests/_helpers/websocket.ts, so each frame and the handshake itself are checked by the test.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { serveHttp } from "./_helpers/backends.ts";
import { readCert } from "./_helpers/certs.ts";
import { startSingleEdge, type TestProxy } from "./_helpers/edgemux.ts";
import {
  openWebSocket,
  type OpenWebSocketOptions,
  WebSocketHandshakeError,
} from "./_helpers/websocket.ts";

/** What the backend saw of one WebSocket. */
interface SocketLog {
  headers: Record<string, string>;
  /** The subprotocols the client offered, as the backend received them. */
  offered: string[];
  chosen: string | null;
  closed: Promise<{ code: number; reason: string }>;
}

interface WebSocketBackend extends AsyncDisposable {
  port: number;
  sockets: SocketLog[];
}

/**
 * Echoes every message. Prefers subprotocol `chat.v2`, then `chat.v1`. On the text message
 * `close-me` it closes with 4001 "bye now". Any other path answers 404 without upgrading.
 */
function startWebSocketBackend(): WebSocketBackend {
  const sockets: SocketLog[] = [];
  const server = serveHttp((req) => {
    if (new URL(req.url).pathname !== "/ws") {
      return new Response("not a websocket endpoint\n", { status: 404 });
    }
    // Headers must be read before upgrading (Deno's upgrade API needs them first).
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = v;
    const offered = (headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim())
      .filter((p) => p !== "");
    const chosen = ["chat.v2", "chat.v1"].find((p) => offered.includes(p)) ?? null;
    const { socket, response } = Deno.upgradeWebSocket(
      req,
      chosen === null ? {} : { protocol: chosen },
    );
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      socket.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    });
    socket.onmessage = (e) => {
      if (e.data === "close-me") socket.close(4001, "bye now");
      else socket.send(e.data);
    };
    sockets.push({ headers, offered, chosen, closed });
    return response;
  });
  return { port: server.port, sockets, [Symbol.asyncDispose]: server.close };
}

async function setup(): Promise<{ backend: WebSocketBackend; edgemux: TestProxy }> {
  const backend = startWebSocketBackend();
  const edgemux = await startSingleEdge(backend.port, { name: "chat", sni: "chat.example.test" });
  return { backend, edgemux };
}

function target(edgemux: TestProxy, extra: Partial<OpenWebSocketOptions> = {}) {
  return {
    port: edgemux.port("https"),
    serverName: "chat.example.test",
    caCerts: [readCert("ca")],
    path: "/ws",
    ...extra,
  };
}

Deno.test("a WebSocket through edge echoes text, binary and ping, with the subprotocol chosen", async () => {
  const { backend: b, edgemux: e } = await setup();
  await using backend = b;
  await using edgemux = e;
  await using ws = await openWebSocket(target(edgemux, { protocols: ["chat.v1", "chat.v2"] }));
  equal(ws.protocol, "chat.v2");
  equal(ws.response.status, 101);

  await ws.sendText("hello through edgemux");
  deepEqual(await ws.receive(), { kind: "text", text: "hello through edgemux" });

  // 200 KB spans many TLS records and relay reads, and takes the 64-bit length form.
  const big = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
  await ws.sendBinary(big);
  const echoed = await ws.receive();
  equal(echoed.kind, "binary");
  ok(echoed.kind === "binary" && echoed.data.length === big.length);
  ok(echoed.kind === "binary" && echoed.data.every((x, i) => x === big[i]), "binary differs");

  await ws.ping(new TextEncoder().encode("are you there"));
  deepEqual(await ws.receive(), { kind: "pong", data: new TextEncoder().encode("are you there") });

  const seen = backend.sockets[0];
  deepEqual(seen.offered, ["chat.v1", "chat.v2"]);
  equal(seen.headers["x-forwarded-for"], "127.0.0.1");
  equal(seen.headers["x-forwarded-proto"], "https");
  equal(seen.headers["upgrade"], "websocket");

  await ws.close(1000, "done");
  deepEqual(await ws.receive(), { kind: "close", code: 1000, reason: "done" });
  ok(await ws.waitForEof(3000), "edgemux kept the connection open after the closing handshake");
  ws.abort();
  // The request record is written when the tunnel has closed on both sides.
  const rec = await edgemux.waitForRequest((x) => x.path === "/ws");
  equal(rec.status, 101);
  equal(rec.end, "upgraded");
  equal(rec.http, "h1");
});

Deno.test("a WebSocket without a subprotocol the backend knows gets none", async () => {
  const { backend: b, edgemux: e } = await setup();
  await using _backend = b;
  await using edgemux = e;
  await using ws = await openWebSocket(target(edgemux, { protocols: ["mqtt"] }));
  equal(ws.protocol, null);
  await ws.sendText("still echoes");
  deepEqual(await ws.receive(), { kind: "text", text: "still echoes" });
});

Deno.test("a close code and reason from the backend reach the client, and the client's reach the backend", async (t) => {
  const { backend: b, edgemux: e } = await setup();
  await using backend = b;
  await using edgemux = e;

  await t.step('the backend closes with 4001 "bye now"', async () => {
    await using ws = await openWebSocket(target(edgemux));
    await ws.sendText("close-me");
    deepEqual(await ws.receive(), { kind: "close", code: 4001, reason: "bye now" });
    await ws.close(4001, "bye now");
    ok(await ws.waitForEof(3000), "the connection stayed open after the close handshake");
    deepEqual(await backend.sockets.at(-1)!.closed, { code: 4001, reason: "bye now" });
  });

  await t.step('the client closes with 4002 "client bye"', async () => {
    await using ws = await openWebSocket(target(edgemux));
    await ws.sendText("ready");
    deepEqual(await ws.receive(), { kind: "text", text: "ready" });
    await ws.close(4002, "client bye");
    const reply = await ws.receive();
    equal(reply.kind, "close");
    deepEqual(await backend.sockets.at(-1)!.closed, { code: 4002, reason: "client bye" });
  });
});

Deno.test("an upgrade the backend refuses is an ordinary response, not a tunnel", async () => {
  const { backend: b, edgemux: e } = await setup();
  await using backend = b;
  await using edgemux = e;
  await rejects(
    openWebSocket(target(edgemux, { path: "/not-here" })),
    (err: unknown) => err instanceof WebSocketHandshakeError && err.response?.status === 404,
  );
  equal(backend.sockets.length, 0);
  // The same proxy still upgrades the right path.
  await using ws = await openWebSocket(target(edgemux));
  await ws.sendText("after a refusal");
  deepEqual(await ws.receive(), { kind: "text", text: "after a refusal" });
});
