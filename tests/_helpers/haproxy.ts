/**
 * A real HAProxy (Debian `haproxy`) as a test peer: a TCP load balancer in front of edgemux,
 * configured per test in a temp directory and run in the foreground.
 *
 * @module
 */

import { pickFreePort } from "./ports.ts";
import { type BackgroundProcess, startProcess } from "./process.ts";
import { makeTempDir } from "./tmp.ts";
import { requireTool } from "./tools.ts";

/** A running HAProxy. */
export interface Haproxy extends AsyncDisposable {
  /** The port of its one frontend on 127.0.0.1. */
  readonly port: number;
  readonly process: BackgroundProcess;
  output(): string;
}

/**
 * Starts HAProxy in TCP mode with one frontend on a free port, forwarding every connection to
 * 127.0.0.1:`upstreamPort` with `serverOptions` on the server line, e.g. `send-proxy-v2`.
 *
 * @throws {Error} when haproxy is missing, exits, or does not listen in time
 */
export async function startHaproxyTcp(
  upstreamPort: number,
  serverOptions: string,
): Promise<Haproxy> {
  const bin = requireTool("haproxy", "haproxy");
  for (let attempt = 1;; attempt++) {
    const port = pickFreePort();
    const tmp = await makeTempDir("edgemux-haproxy-");
    const cfg = `${tmp.path}/haproxy.cfg`;
    await Deno.writeTextFile(
      cfg,
      `global
  maxconn 100
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server edgemux 127.0.0.1:${upstreamPort} ${serverOptions}
`,
    );
    // -db: stay in the foreground, no daemon; -W is not needed for one process.
    const proc = startProcess(bin, ["-db", "-f", cfg]);
    const stop = async () => {
      await proc.stop("SIGTERM");
      await tmp[Symbol.asyncDispose]();
    };
    try {
      await waitForPort(port, proc);
      return { port, process: proc, output: proc.output, [Symbol.asyncDispose]: stop };
    } catch (error) {
      await stop();
      if (attempt >= 3 || !proc.output().includes("Address already in use")) throw error;
    }
  }
}

async function waitForPort(port: number, proc: BackgroundProcess): Promise<void> {
  let exited = false;
  proc.exited.then(() => exited = true);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`haproxy exited; output:\n${proc.output()}`);
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`haproxy did not listen on ${port}; output:\n${proc.output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
