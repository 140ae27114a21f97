/**
 * Resident memory per held connection, measured the way issue 12 states it: a fresh edgemux,
 * its idle RSS, then N connections opened by a separate client process and held, 2 s of
 * settling, and (VmRSS − idle VmRSS) ÷ N.
 *
 *   deno run -A scripts/held_memory.ts [--steps 1000,5000] [--scenarios forward,passthrough,edge]
 *     [--main main.ts]
 *
 * Scenarios:
 * - `forward`: a forward route to a TCP backend; the client connects and sends nothing.
 * - `passthrough`: a passthrough route to a TLS backend (`Deno.listenTls`, which answers the
 *   hello and then waits for the client's next flight); the client sends a real ClientHello
 *   (testdata/hellos/curl.bin, 517 bytes), reads the first byte of the answer, and holds.
 * - `edge`: an edge route with testdata/certs/edge-wildcard.pem; the client sends the same hello,
 *   reads the first byte of edgemux's answer, and holds (the handshake never finishes, so
 *   `sniff.timeout` is raised to 10 minutes for the run).
 *
 * Each scenario gets a fresh edgemux. Steps are cumulative (1000 then 5000 in one process). The
 * soft descriptor limit must allow about 3 × the last step in edgemux (`ulimit -n`). Prints one
 * line per step and scenario, and a JSON summary last.
 *
 * `--hello FILE` picks another hello from testdata/hellos/ (default chromium.bin, 2020 bytes, whose
 * answer from a TLS 1.3 server with a post-quantum key share is 2–3 KB). `--heap` also runs
 * edgemux with its inspector and reports, per connection, the growth of the JS heap
 * (`heapUsed`) and of `external` (ArrayBuffers) after a full GC: the rest of the RSS is native.
 *
 * Internal mode (used by the script itself): `--client PORT KIND` opens and holds connections,
 * reading target counts from stdin.
 *
 * @module
 */

import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname;
const HELLOS = `${ROOT}testdata/hellos/`;
const CERT = `${ROOT}testdata/certs/edge-wildcard.pem`;
const KEY = `${ROOT}testdata/certs/edge-wildcard.key`;
const CONCURRENCY = 50;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "1000,5000" },
    scenarios: { type: "string", default: "forward,passthrough,edge" },
    main: { type: "string", default: `${ROOT}main.ts` },
    settle: { type: "string", default: "2000" },
    client: { type: "string" },
    kind: { type: "string" },
    "v8-flags": { type: "string" },
    hello: { type: "string", default: "chromium.bin" },
    heap: { type: "boolean", default: false },
  },
  strict: true,
});

if (values.client !== undefined) {
  await runClient(Number(values.client), values.kind as "tcp" | "hello");
  Deno.exit(0);
}

/** Client mode: for each line "N" on stdin, opens connections up to N, then prints "held N E". */
async function runClient(port: number, kind: "tcp" | "hello"): Promise<void> {
  const hello = await Deno.readFile(`${HELLOS}${values.hello}`);
  const held: Deno.Conn[] = [];
  let errors = 0;
  let firstError = "";
  const openOne = async () => {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(conn);
      if (kind === "hello") {
        for (let off = 0; off < hello.length;) off += await conn.write(hello.subarray(off));
        const n = await conn.read(new Uint8Array(1));
        if (n !== 1) throw new Error("no answer to the hello");
      }
    } catch (e) {
      errors++;
      firstError ||= String(e);
    }
  };
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffered = "";
  for await (const chunk of lines) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const target = Number(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      let next = held.length + errors;
      const worker = async () => {
        while (next < target) {
          next++;
          await openOne();
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      console.log(`held ${held.length - errors} ${errors} ${firstError}`);
    }
  }
  for (const c of held) {
    try {
      c.close();
    } catch {
      // Closed by the peer already.
    }
  }
}

// ---- harness mode -----------------------------------------------------------------------------

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

function fds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Backends live in this process: a TCP one that accepts and holds, a TLS one that answers. */
function startBackends(): { tcp: number; tls: number; close(): void } {
  const held: Deno.Conn[] = [];
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tls = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(CERT),
    key: Deno.readTextFileSync(KEY),
  });
  (async () => {
    for await (const c of tcp) held.push(c);
  })().catch(() => {});
  (async () => {
    for await (const c of tls) {
      held.push(c);
      c.handshake().catch(() => {});
    }
  })().catch(() => {});
  return {
    tcp: tcp.addr.port,
    tls: tls.addr.port,
    close() {
      tcp.close();
      tls.close();
      for (const c of held) {
        try {
          c.close();
        } catch {
          // Gone already.
        }
      }
    },
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function config(port: number, scenario: string, backends: { tcp: number; tls: number }): string {
  const route = scenario === "forward"
    ? `      - forward: tcp`
    : scenario === "passthrough"
    ? `      - sni: [a.example.test, www.example.test]\n        passthrough: tls`
    : `      - sni: [a.example.test, www.example.test]\n        edge: tcp`;
  return `version: 1
shutdown_timeout: 0
log:
  level: warning
  access: false
limits:
  max_connections: 100000
  per_client:
    max_connections: 100000
certificates:
  files:
    - { cert: ${CERT}, key: ${KEY} }
  watch_interval: 0
backends:
  tcp:
    servers: ["127.0.0.1:${backends.tcp}"]
    max_connections_per_client: none
  tls:
    servers: ["127.0.0.1:${backends.tls}"]
    max_connections_per_client: none
listeners:
  main:
    bind: "127.0.0.1:${port}"
    sniff:
      timeout: 10m
    routes:
${route}
`;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`edgemux did not listen on ${port}`);
}

/** A function that runs a full GC in edgemux and returns its Deno.memoryUsage(). */
async function inspector(port: number): Promise<() => Promise<Deno.MemoryUsage>> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((r) => ws.onopen = r);
  let id = 0;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    waiting.get(msg.id)?.(msg.result);
    waiting.delete(msg.id);
  };
  return async () => {
    const my = ++id;
    const result = new Promise<unknown>((r) => waiting.set(my, r));
    ws.send(JSON.stringify({
      id: my,
      method: "Runtime.evaluate",
      params: { expression: "globalThis.gc?.(); JSON.stringify(Deno.memoryUsage())" },
    }));
    const r = await result as { result: { value: string } };
    return JSON.parse(r.result.value);
  };
}

interface Row {
  scenario: string;
  n: number;
  held: number;
  errors: number;
  idleKiB: number;
  heldKiB: number;
  kbPerConn: number;
  fdsPerConn: number;
}

async function measure(scenario: string, steps: number[]): Promise<Row[]> {
  const backends = startBackends();
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "held-memory-" });
  const cfg = `${dir}/edgemux.yaml`;
  await Deno.writeTextFile(cfg, config(port, scenario, backends));
  const args = ["run", "-A"];
  const inspectPort = values.heap ? freePort() : 0;
  if (values.heap) args.push(`--inspect=127.0.0.1:${inspectPort}`, "--v8-flags=--expose-gc");
  else if (values["v8-flags"]) args.push(`--v8-flags=${values["v8-flags"]}`);
  const proxy = new Deno.Command(Deno.execPath(), {
    args: [...args, values.main!, "run", "-c", cfg],
    stdout: "null",
    stderr: "inherit",
    cwd: dir,
  }).spawn();
  const rows: Row[] = [];
  const client = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--client",
      String(port),
      "--kind",
      scenario === "forward" ? "tcp" : "hello",
      "--hello",
      values.hello!,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    await waitForPort(port);
    await sleep(1000);
    const writer = client.stdin.getWriter();
    const reader = client.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const nextLine = async () => {
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("client ended");
        out += value;
      }
      const line = out.slice(0, out.indexOf("\n"));
      out = out.slice(out.indexOf("\n") + 1);
      return line;
    };
    const heap = values.heap ? await inspector(inspectPort) : null;
    const idleHeap = heap ? await heap() : null;
    const idle = rssKiB(proxy.pid);
    const idleFds = fds(proxy.pid);
    for (const n of steps) {
      await writer.write(new TextEncoder().encode(`${n}\n`));
      const [, held, errors, ...first] = (await nextLine()).split(" ");
      await sleep(Number(values.settle));
      const usage = heap ? await heap() : null;
      const now = rssKiB(proxy.pid);
      const row: Row = {
        scenario,
        n,
        held: Number(held),
        errors: Number(errors),
        idleKiB: idle,
        heldKiB: now,
        // KB as in the issue: 1000 bytes.
        kbPerConn: Math.round(((now - idle) * 1024 / 1000 / n) * 10) / 10,
        fdsPerConn: Math.round(((fds(proxy.pid) - idleFds) / n) * 100) / 100,
      };
      rows.push(row);
      console.log(
        `${scenario.padEnd(12)} N=${String(n).padEnd(5)} held=${row.held} errors=${row.errors}` +
          ` idle=${(idle / 1024).toFixed(1)}MiB held=${(now / 1024).toFixed(1)}MiB` +
          ` => ${row.kbPerConn} KB/conn, ${row.fdsPerConn} fds/conn` +
          (usage && idleHeap
            ? ` [JS heap ${((usage.heapUsed - idleHeap.heapUsed) / n / 1000).toFixed(1)} KB,` +
              ` external ${((usage.external - idleHeap.external) / n / 1000).toFixed(1)} KB]`
            : "") +
          (first.length ? ` (${first.join(" ")})` : ""),
      );
    }
    await writer.close();
  } finally {
    try {
      client.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    await client.status;
    proxy.kill("SIGKILL");
    await proxy.status;
    backends.close();
    await Deno.remove(dir, { recursive: true });
  }
  return rows;
}

const steps = values.steps!.split(",").map(Number);
const all: Row[] = [];
for (const scenario of values.scenarios!.split(",")) all.push(...await measure(scenario, steps));
console.log(JSON.stringify(all));
