/**
 * What one held TCP connection costs in a Deno process, per API and read-buffer size: the
 * micro-measurements behind docs/deno-runtime.md ("What a held connection costs").
 *
 *   deno run -A scripts/conn_cost.ts [--n 2000] [--modes deno-accept,deno-read-1,...]
 *
 * For each mode a fresh server process (`deno run --v8-flags=--expose-gc`) accepts N
 * connections from this process; after 2 s and a full GC it reports VmRSS growth, JS heap
 * growth (`Deno.memoryUsage().heapUsed`) and `external` growth, each ÷ N, in bytes. Modes:
 *
 * - `deno-accept`: `Deno.listen`, the accepted `Deno.TcpConn` is kept, nothing read.
 * - `deno-read-B`: the same plus one pending `conn.read()` into a fresh B-byte buffer.
 * - `deno-used-B`: the client sends 2000 bytes first; the server reads them into a B-byte
 *   buffer, then leaves a read pending on the same buffer (a buffer that carried data).
 * - `node-paused`: `node:net` `createServer({ pauseOnConnect: true })`, sockets kept.
 * - `node-flowing`: `node:net`, a `data` listener on each socket (a read always pending).
 * - `denotls-hello`: `Deno.listenTls` with testdata/certs/edge-wildcard.pem, `handshake()` started;
 *   the client sends testdata/hellos/chromium.bin and reads the first byte of the answer, then
 *   holds (a TLS connection stalled after the server's first flight).
 * - `nodetls-hello`: the same with `node:tls` `createServer`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import net from "node:net";
import tls from "node:tls";

const ROOT = new URL("..", import.meta.url).pathname;
const CERT = `${ROOT}testdata/certs/edge-wildcard.pem`;
const KEY = `${ROOT}testdata/certs/edge-wildcard.key`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "2000" },
    modes: {
      type: "string",
      default: "deno-accept,deno-read-1,deno-read-16,deno-read-512,deno-read-4096," +
        "deno-read-65536,deno-read-262144,deno-used-4096,deno-used-65536,deno-used-262144," +
        "node-paused,node-flowing,denotls-hello,nodetls-hello",
    },
    serve: { type: "string" },
  },
  strict: true,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
}

function snapshot(): { rss: number; heap: number; external: number } {
  (globalThis as unknown as { gc?: () => void }).gc?.();
  const m = Deno.memoryUsage();
  return { rss: rssBytes(), heap: m.heapUsed, external: m.external };
}

if (values.serve !== undefined) {
  // Server mode: print the port, wait for "N\n" on stdin meaning N are connected, then report.
  const mode = values.serve;
  const kept: unknown[] = [];
  let accepted = 0;
  let port: number;
  const [, api, what, size] = /^(deno|node|denotls|nodetls)-(\w+)(?:-(\d+))?$/.exec(mode)!;
  if (api === "denotls") {
    const l = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: Deno.readTextFileSync(CERT),
      key: Deno.readTextFileSync(KEY),
    });
    port = l.addr.port;
    (async () => {
      for await (const c of l) {
        kept.push(c);
        accepted++;
        c.handshake().catch(() => {});
      }
    })();
  } else if (api === "nodetls") {
    const server = tls.createServer({
      cert: Deno.readTextFileSync(CERT),
      key: Deno.readTextFileSync(KEY),
    });
    server.on("connection", (s) => {
      kept.push(s);
      accepted++;
    });
    server.on("tlsClientError", () => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
  } else if (api === "deno") {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = l.addr.port;
    (async () => {
      for await (const c of l) {
        kept.push(c);
        accepted++;
        if (what === "read") c.read(new Uint8Array(Number(size))).catch(() => {});
        if (what === "used") {
          const buf = new Uint8Array(Number(size));
          (async () => {
            let got = 0;
            while (got < 2000) got += (await c.read(buf)) ?? 2000;
            await c.read(buf);
          })().catch(() => {});
        }
      }
    })();
  } else {
    const server = net.createServer({ pauseOnConnect: what === "paused" }, (s) => {
      kept.push(s);
      accepted++;
      if (what === "flowing") s.on("data", () => {});
      s.on("error", () => {});
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
  }
  await sleep(500);
  const before = snapshot();
  console.log(port);
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "\n";
  const n = Number(line.trim());
  while (accepted < n) await sleep(50);
  await sleep(2000);
  const after = snapshot();
  console.log(JSON.stringify({
    rss: Math.round((after.rss - before.rss) / n),
    heap: Math.round((after.heap - before.heap) / n),
    external: Math.round((after.external - before.external) / n),
  }));
  Deno.exit(0);
}

const n = Number(values.n);
console.log(`| mode | RSS B/conn | JS heap B/conn | external B/conn |`);
console.log(`|---|---|---|---|`);
for (const mode of values.modes!.split(",")) {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      "--serve",
      mode,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const out = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const line = async () => {
    while (!text.includes("\n")) text += (await out.read()).value ?? "";
    const l = text.slice(0, text.indexOf("\n"));
    text = text.slice(text.indexOf("\n") + 1);
    return l;
  };
  const port = Number(await line());
  const conns: Deno.Conn[] = [];
  const payload = new Uint8Array(2000);
  const hello = Deno.readFileSync(`${ROOT}testdata/hellos/chromium.bin`);
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, async () => {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c);
      if (mode.startsWith("deno-used")) await c.write(payload);
      if (mode.endsWith("-hello")) {
        await c.write(hello);
        await c.read(new Uint8Array(1));
      }
    }));
  }
  const w = server.stdin.getWriter();
  await w.write(new TextEncoder().encode(`${n}\n`));
  const r = JSON.parse(await line());
  console.log(`| ${mode} | ${r.rss} | ${r.heap} | ${r.external} |`);
  await server.status;
  for (const c of conns) c.close();
}
