/**
 * The response-isolation fuzz target: two HTTP/1.1 clients take turns through a running edgemux
 * to a backend that misframes responses at random (tests/_helpers/lying_backend.ts), and every
 * response a client receives must answer one of its own requests. The attacker picks the lie,
 * the method and whether to smuggle a request in a body; the victim sends honest requests. Both
 * keep connections alive, reconnect when edgemux closes theirs, and sometimes run requests side
 * by side on several connections.
 *
 * Unlike the pure targets in `targets/`, this one needs sockets, so it is async and driven from
 * `tests/response_isolation_test.ts` (a short run) and from the command line for long runs:
 *
 *     deno run -A fuzz/isolation.ts [--seed N] [--requests N]
 *
 * which starts its own edgemux and backend on loopback.
 *
 * @module
 */

import { readCert } from "../tests/_helpers/certs.ts";
import { LIE_SHAPES } from "../tests/_helpers/lying_backend.ts";
import { connectTlsByName, ConnReader } from "../tests/_helpers/websocket.ts";
import { Rng } from "./rng.ts";

/** What one run saw. */
export interface IsolationReport {
  /** Requests sent, per client. */
  sent: Record<string, number>;
  /** Answers from the backend (2xx) per client, all verified as its own. */
  own: Record<string, number>;
  /** Answers edgemux made itself (502 and the like) per client. */
  refused: Record<string, number>;
  /** Connections each client had to open (edgemux closes a connection whose backend lied). */
  connections: Record<string, number>;
  /** Every violation: a client that received another client's response. Empty when all held. */
  leaks: string[];
}

/** Where to send, and how much. */
export interface IsolationOptions {
  port: number;
  serverName: string;
  seed: number;
  /** Requests per client. */
  requests: number;
  /** Requests a client may have in flight at once, each on its own connection. */
  parallel?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const READ_TIMEOUT = 10_000;

/** One client connection that reconnects when closed. */
class Client {
  #conn: { conn: Deno.TlsConn; reader: ConnReader } | null = null;

  constructor(
    readonly name: string,
    readonly opts: IsolationOptions,
    readonly report: IsolationReport,
  ) {}

  async #open() {
    if (this.#conn !== null && !this.#conn.reader.eof) return this.#conn;
    this.close();
    const { conn } = await connectTlsByName({
      port: this.opts.port,
      serverName: this.opts.serverName,
      caCerts: [readCert("ca")],
    });
    this.report.connections[this.name]++;
    return this.#conn = { conn, reader: new ConnReader(conn) };
  }

  close() {
    try {
      this.#conn?.conn.close();
    } catch {
      // Closed by the server already.
    }
    this.#conn = null;
  }

  /** Sends one request and checks what comes back. */
  async send(method: string, shape: string, body: string | null): Promise<void> {
    this.report.sent[this.name]++;
    let head = `${method} /lie/${shape} HTTP/1.1\r\nhost: ${this.opts.serverName}\r\n` +
      `x-client: ${this.name}\r\n`;
    if (body !== null) head += `content-length: ${body.length}\r\n`;
    const { conn, reader } = await this.#open();
    try {
      await writeAll(conn, encoder.encode(`${head}\r\n${body ?? ""}`));
      const raw = await reader.readUntil("\r\n\r\n", READ_TIMEOUT);
      if (raw === null) {
        // Closed before an answer: edgemux gave up on a connection it could not trust.
        this.report.refused[this.name]++;
        this.close();
        return;
      }
      const text = decoder.decode(raw);
      const status = Number(text.slice(9, 12));
      const fields = new Map<string, string>();
      for (const line of text.split("\r\n").slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) fields.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      let content = "";
      if (method !== "HEAD" && status !== 204 && status !== 304) {
        if (fields.get("transfer-encoding") === "chunked") {
          for (;;) {
            const size = await reader.readUntil("\r\n", READ_TIMEOUT);
            if (size === null) throw new Error("closed inside a chunked body");
            const n = parseInt(decoder.decode(size), 16);
            const data = await reader.readExactly(n + 2, READ_TIMEOUT);
            if (n === 0) break;
            content += decoder.decode(data.subarray(0, n));
          }
        } else if (fields.has("content-length")) {
          const n = Number(fields.get("content-length"));
          content = decoder.decode(await reader.readExactly(n, READ_TIMEOUT));
        }
      }
      this.#check(status, content, `${method} /lie/${shape}`);
      if (fields.get("connection") === "close") this.close();
    } catch (e) {
      this.close();
      if (e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe) {
        this.report.refused[this.name]++;
        return;
      }
      throw e;
    }
  }

  #check(status: number, content: string, what: string) {
    const tag = /client=([^;]*)/.exec(content)?.[1];
    if (tag !== undefined && tag !== this.name) {
      this.report.leaks.push(`${this.name} sent ${what} and received ${JSON.stringify(content)}`);
      return;
    }
    if (status >= 200 && status < 300 && tag === this.name) this.report.own[this.name]++;
    else this.report.refused[this.name]++;
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await conn.write(data.subarray(o));
}

/**
 * Runs the attacker (`A`, random lies) and the victim (`B`, honest requests) side by side and
 * returns what each received.
 */
export async function runIsolation(opts: IsolationOptions): Promise<IsolationReport> {
  const report: IsolationReport = {
    sent: { A: 0, B: 0 },
    own: { A: 0, B: 0 },
    refused: { A: 0, B: 0 },
    connections: { A: 0, B: 0 },
    leaks: [],
  };
  const parallel = opts.parallel ?? 2;
  const lanes = (name: string, stream: number) =>
    Array.from({ length: parallel }, (_, lane) => {
      const rng = new Rng(opts.seed, stream * 16 + lane);
      const client = new Client(name, opts, report);
      return (async () => {
        try {
          for (let i = lane; i < opts.requests; i += parallel) {
            if (name === "A") await attack(client, rng);
            else {
              await client.send(rng.chance(0.2) ? "POST" : "GET", "honest", null);
              if (rng.chance(0.1)) client.close();
            }
            // Give the lies told "later" a chance to land between requests.
            if (rng.chance(0.3)) await new Promise((r) => setTimeout(r, rng.int(0, 40)));
          }
        } finally {
          client.close();
        }
      })();
    });
  await Promise.all([...lanes("A", 1), ...lanes("B", 2)]);
  return report;
}

async function attack(client: Client, rng: Rng): Promise<void> {
  const shape = LIE_SHAPES[rng.below(LIE_SHAPES.length)];
  if (shape === "ignore-body") {
    // A request in the body of a GET: a second answer the backend sends unasked.
    const smuggled = `GET /lie/honest HTTP/1.1\r\nhost: x\r\nx-client: ${client.name}\r\n\r\n`;
    await client.send(rng.chance(0.5) ? "GET" : "POST", shape, smuggled.repeat(rng.int(1, 3)));
    return;
  }
  const method = shape === "head-late-body" ? "HEAD" : rng.chance(0.2) ? "POST" : "GET";
  await client.send(method, shape, method === "POST" ? "x".repeat(rng.int(0, 64)) : null);
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: { seed: { type: "string" }, requests: { type: "string", default: "2000" } },
  });
  const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
  const { startLyingBackend } = await import("../tests/_helpers/lying_backend.ts");
  const { startSingleEdge } = await import("../tests/_helpers/edgemux.ts");
  await using backend = startLyingBackend();
  await using proxy = await startSingleEdge(backend.port, { name: "app", sni: "app.example.test" });
  const report = await runIsolation({
    port: proxy.port("https"),
    serverName: "app.example.test",
    seed,
    requests: Number(values.requests),
  });
  console.log(JSON.stringify({ seed, ...report, leaks: report.leaks.length }));
  for (const leak of report.leaks.slice(0, 20)) console.log(`LEAK: ${leak}`);
  if (report.leaks.length > 0) Deno.exitCode = 1;
}
