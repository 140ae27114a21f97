/**
 * Opens many connections to a proxy and holds them open, for the memory scenario. Runs as its
 * own process (started by bench/run.ts) so that its sockets and memory are not the harness's.
 *
 *   deno run -A bench/holder.ts --port P --kind tcp|hello|hello-read1|tls --steps 1000,5000
 *     [--hello FILE] [--sni NAME] [--ca FILE] [--concurrency N]
 *
 * Kinds: `tcp` connects and sends nothing; `hello` sends the ClientHello in FILE and then
 * nothing (never reads the answer); `hello-read1` sends the ClientHello in FILE, reads exactly
 * one byte of the answer (the first byte of the ServerHello's record), and then holds; `tls`
 * completes a TLS handshake for NAME, then sends nothing. After reaching each step it prints `held N errors E` and waits for a line on stdin
 * before the next; after the last it waits for stdin to close, then closes everything.
 *
 * @module
 */

import { parseArgs } from "node:util";

const SERVER_NAME: unique symbol = Symbol.for("unstableServerName") as never;
/**
 * Connections opened at once by default: enough to be quick, few enough not to overrun the
 * backlog.
 */
const DEFAULT_CONCURRENCY = 50;

const KINDS = ["tcp", "hello", "hello-read1", "tls"] as const;
type Kind = typeof KINDS[number];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    kind: { type: "string" },
    steps: { type: "string" },
    hello: { type: "string" },
    sni: { type: "string" },
    ca: { type: "string" },
    concurrency: { type: "string" },
  },
  strict: true,
});

const port = Number(values.port);
const kind = values.kind as Kind;
const steps = (values.steps ?? "").split(",").map(Number);
const concurrency = Number(values.concurrency ?? DEFAULT_CONCURRENCY);
if (
  !(port > 0) || !KINDS.includes(kind) || steps.some((s) => !(s > 0)) ||
  !Number.isInteger(concurrency) || concurrency < 1
) {
  console.error(`usage: holder.ts --port P --kind ${KINDS.join("|")} --steps N[,N…] [options]`);
  Deno.exit(2);
}
const hello = values.hello ? await Deno.readFile(values.hello) : undefined;
const ca = values.ca ? await Deno.readTextFile(values.ca) : undefined;
if ((kind === "hello" || kind === "hello-read1") && !hello) {
  throw new Error(`--kind ${kind} needs --hello FILE`);
}
if (kind === "tls" && (!values.sni || !ca)) throw new Error("--kind tls needs --sni and --ca");

const held: Deno.Conn[] = [];
let errors = 0;
let firstError = "";

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

async function openOne(): Promise<void> {
  try {
    if (kind === "tls") {
      const options: Deno.ConnectTlsOptions & { [SERVER_NAME]: string } = {
        hostname: "127.0.0.1",
        port,
        caCerts: [ca!],
        alpnProtocols: ["http/1.1"],
        [SERVER_NAME]: values.sni!,
      };
      const conn = await Deno.connectTls(options);
      await conn.handshake();
      held.push(conn);
      return;
    }
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      if (hello) await writeAll(conn, hello);
      if (kind === "hello-read1") {
        // One byte and no more: the rest of the answer stays in this socket's receive buffer.
        const n = await conn.read(new Uint8Array(1));
        if (n !== 1) throw new Error("the proxy closed the connection before answering");
      }
    } catch (e) {
      conn.close();
      throw e;
    }
    held.push(conn);
  } catch (e) {
    errors++;
    firstError ||= String(e);
  }
}

async function openUpTo(target: number): Promise<void> {
  let next = held.length + errors;
  const worker = async () => {
    while (next < target) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
async function waitForLine(): Promise<boolean> {
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) return false;
    buffered += value;
  }
  return true;
}

for (const step of steps) {
  await openUpTo(step);
  console.log(`held ${held.length} errors ${errors}${firstError ? ` first ${firstError}` : ""}`);
  if (!(await waitForLine())) break;
}
for (const conn of held) {
  try {
    conn.close();
  } catch {
    // The peer closed it already.
  }
}
console.log("closed");
