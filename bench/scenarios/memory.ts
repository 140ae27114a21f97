/**
 * The memory scenario: the resident memory each held connection adds to a proxy. For each kind
 * of connection and each proxy that serves it, a fresh proxy is started and its idle RSS read;
 * it is warmed up with 20 connections of that kind and its RSS read again; then
 * bench/holder.ts (a separate process) opens connections up to each step and holds them while
 * RSS settles. The report divides the growth by the connections held, from either baseline.
 *
 * @module
 */

import { openFds, rssKiB, sleep, startInteractive } from "../_proc.ts";
import { CA_FILE, NAMES, REPO_ROOT } from "../_setup.ts";
import { type Proxy, startProxy } from "../_proxies.ts";
import { BenchError, parseHolderLine } from "../_tools.ts";
import type { Context, MemoryResult, ProxyKind, Scenario } from "../_types.ts";

/** One kind of held connection. */
export interface MemoryKind {
  /** Its label in the report. */
  kind: string;
  /** Whether it is one of issue 12's three, or one of the older variants kept to compare. */
  issue: boolean;
  proxies: readonly ProxyKind[];
  /** Descriptors a proxy holds per connection of this kind once it has set it up. */
  fdsPerConn(proxy: ProxyKind): number;
  port(p: Proxy): number;
  holderArgs(ctx: Context): string[];
  /** One connection of this kind, opened and closed by the harness, to warm the proxy up. */
  warm(port: number, ctx: Context): Promise<void>;
}

const SERVER_NAME: unique symbol = Symbol.for("unstableServerName") as never;

/** Sends a captured ClientHello, reads once (some of the answer) and closes. */
async function helloAndRead(port: number, helloFile: string): Promise<void> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(await Deno.readFile(helloFile));
    await c.read(new Uint8Array(16384));
  } finally {
    c.close();
  }
}

/**
 * A relay holds the client's socket and the backend's; a terminating HAProxy or edgemux holds
 * the client's socket and both ends of its loopback hop to the terminating frontend; Caddy
 * holds the client's socket alone.
 */
const terminatedFds = (proxy: ProxyKind) => proxy === "caddy" ? 1 : 3;

/** Labels of the kinds, for the report's summary table. */
export const MEMORY_KIND_NAMES = {
  tcp: "TCP forward, connected and idle",
  passthroughRead1: "passthrough: ClientHello sent, first byte of the backend's answer read, held",
  edgeRead1: "edge: ClientHello sent, first byte of the proxy's answer read, held",
  passthroughUnread: "passthrough: ClientHello sent, answer never read, held",
  edgeHandshake: "edge: TLS handshake completed, then idle",
} as const;

export const MEMORY_KINDS: readonly MemoryKind[] = [
  {
    kind: MEMORY_KIND_NAMES.tcp,
    issue: true,
    proxies: ["haproxy", "edgemux"],
    fdsPerConn: () => 2,
    port: (p) => p.ports.fwdHttp,
    holderArgs: () => ["--kind", "tcp"],
    async warm(port) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        await c.read(new Uint8Array(4096));
      } finally {
        c.close();
      }
    },
  },
  {
    kind: MEMORY_KIND_NAMES.passthroughRead1,
    issue: true,
    proxies: ["haproxy", "edgemux"],
    fdsPerConn: () => 2,
    port: (p) => p.ports.https,
    holderArgs: (ctx) => ["--kind", "hello-read1", "--hello", ctx.helloFile],
    warm: (port, ctx) => helloAndRead(port, ctx.helloFile),
  },
  {
    kind: MEMORY_KIND_NAMES.edgeRead1,
    issue: true,
    proxies: ["haproxy", "edgemux", "caddy"],
    fdsPerConn: terminatedFds,
    port: (p) => p.ports.https,
    holderArgs: (ctx) => ["--kind", "hello-read1", "--hello", ctx.edgeHelloFile],
    warm: (port, ctx) => helloAndRead(port, ctx.edgeHelloFile),
  },
  {
    kind: MEMORY_KIND_NAMES.passthroughUnread,
    issue: false,
    proxies: ["haproxy", "edgemux"],
    fdsPerConn: () => 2,
    port: (p) => p.ports.https,
    holderArgs: (ctx) => ["--kind", "hello", "--hello", ctx.helloFile],
    warm: (port, ctx) => helloAndRead(port, ctx.helloFile),
  },
  {
    kind: MEMORY_KIND_NAMES.edgeHandshake,
    issue: false,
    proxies: ["haproxy", "edgemux", "caddy"],
    fdsPerConn: terminatedFds,
    port: (p) => p.ports.https,
    holderArgs: () => ["--kind", "tls", "--sni", NAMES.edge, "--ca", CA_FILE],
    async warm(port) {
      const options: Deno.ConnectTlsOptions & { [SERVER_NAME]: string } = {
        hostname: "127.0.0.1",
        port,
        caCerts: [await Deno.readTextFile(CA_FILE)],
        [SERVER_NAME]: NAMES.edge,
      };
      const c = await Deno.connectTls(options);
      try {
        await c.handshake();
      } finally {
        c.close();
      }
    },
  },
];

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls the open descriptors until they reach `want` or stop changing for 1 s (at most 20 s). */
async function settledFds(pid: number, want: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  let last = openFds(pid);
  let stableSince = Date.now();
  while (last < want && Date.now() - stableSince < 1000 && Date.now() < deadline) {
    await sleep(100);
    const now = openFds(pid);
    if (now !== last) stableSince = Date.now();
    last = now;
  }
  return last;
}

async function measureMemory(
  ctx: Context,
  kind: MemoryKind,
  proxy: Proxy,
): Promise<MemoryResult> {
  const pid = proxy.server.pid;
  const port = kind.port(proxy);
  await sleep(1000);
  const idleKiB = rssKiB(pid);
  for (let i = 0; i < 20; i++) {
    await withTimeout(kind.warm(port, ctx), 10_000, `warming ${proxy.kind} up (${kind.kind})`);
  }
  await sleep(1000);
  const result: MemoryResult = {
    kind: kind.kind,
    proxy: proxy.kind,
    idleKiB,
    baselineKiB: rssKiB(pid),
    baselineFds: openFds(pid),
    steps: [],
  };
  const steps = ctx.durations.memorySteps;
  const fdsPerConn = kind.fdsPerConn(proxy.kind);
  const holder = startInteractive([
    Deno.execPath(),
    "run",
    "-A",
    "bench/holder.ts",
    "--port",
    String(port),
    "--steps",
    steps.join(","),
    ...kind.holderArgs(ctx),
  ], { cwd: REPO_ROOT });
  try {
    for (const step of steps) {
      const line = await holder.readLine(120_000);
      const held = parseHolderLine(line);
      if (held.held !== step || held.errors !== 0) {
        throw new BenchError(`${kind.kind} → ${proxy.kind}: the holder said "${line}"`);
      }
      // The holder has sent its bytes; the proxy may still be routing the last connections
      // and dialling their backends. Wait until it holds every one.
      const want = result.baselineFds + step * fdsPerConn;
      const fds = await settledFds(pid, want);
      if (fds < want) {
        ctx.log(`  warning: ${proxy.kind} holds ${fds} descriptors, fewer than ${want}`);
      }
      const rss = rssKiB(pid);
      await sleep(ctx.durations.memorySettleMs);
      const settled = rssKiB(pid);
      result.steps.push({ connections: step, rssKiB: rss, settledKiB: settled, fds });
      ctx.log(
        `  ${proxy.kind} ${kind.kind}: ${step} held, RSS ${idleKiB} (idle) / ` +
          `${result.baselineKiB} (warm) → ${settled} KiB, ` +
          `${((settled - idleKiB) / step).toFixed(1)} KiB/conn from idle, ` +
          `${((fds - result.baselineFds) / step).toFixed(2)} fds/conn`,
      );
      await holder.writeLine("next");
    }
  } finally {
    const end = await holder.close();
    if (end.code !== 0) ctx.log(`holder exited with ${end.code}: ${end.stderr}`);
  }
  return result;
}

/** RSS growth per held connection, for each proxy, started fresh for each kind. */
export const memory: Scenario = {
  name: "memory",
  title: "Memory per held connection",
  async run(ctx) {
    const kinds = MEMORY_KINDS.filter((k) =>
      (ctx.caseFilter === undefined || k.kind.includes(ctx.caseFilter)) &&
      // --quick keeps to issue 12's three kinds, to stay short.
      (k.issue || !ctx.durations.memoryIssueKindsOnly)
    );
    if (kinds.length === 0) {
      throw new BenchError(`no held-connection kind matches "${ctx.caseFilter}"`);
    }
    for (const kind of kinds) {
      const i = MEMORY_KINDS.indexOf(kind);
      for (const proxyKind of kind.proxies) {
        const proxy = await startProxy(proxyKind, {
          dir: ctx.dir,
          backends: ctx.backends.ports,
          label: `memory-${i}`,
        });
        try {
          ctx.results.memory.push(await measureMemory(ctx, kind, proxy));
        } finally {
          await proxy.stop();
        }
      }
    }
  },
};
