/**
 * The throughput scenarios. Each is a list of cases; every case runs against each target that
 * serves its traffic (direct, haproxy, edgemux, caddy, in that order), round after round, so
 * the ratios compare runs made seconds apart. The proxies' CPU time is read from /proc around
 * each run.
 *
 * @module
 */

import { CLOCK_TICKS_PER_SECOND, cpuTicks, formatCommand } from "../_proc.ts";
import { BODIES, NAMES } from "../_setup.ts";
import { type Proxy, startProxy } from "../_proxies.ts";
import { BenchError } from "../_tools.ts";
import type { CaseResult, Context, ProxyKind, Sample, Scenario, TargetName } from "../_types.ts";
import {
  abCase,
  type Case,
  curlCheck,
  directTarget,
  downloadCase,
  h2loadCase,
  iperfCase,
  proxyTarget,
  type Target,
  wrkCase,
} from "./cases.ts";

interface ThroughputSpec {
  name: string;
  title: string;
  /** The proxies to start (default: HAProxy and edgemux). */
  proxies?: ProxyKind[];
  /** Cores each proxy may use (default 1). */
  cores?: 1 | 2;
  /** Whether to measure the backends alone too (default yes). */
  direct?: boolean;
  cases(ctx: Context): Case[];
  check(ctx: Context, t: Target): Promise<void>;
}

async function withProxies<T>(
  ctx: Context,
  label: string,
  kinds: readonly ProxyKind[],
  cores: 1 | 2,
  fn: (proxies: Proxy[]) => Promise<T>,
): Promise<T> {
  const proxies: Proxy[] = [];
  try {
    for (const kind of kinds) {
      proxies.push(
        await startProxy(kind, {
          dir: ctx.dir,
          backends: ctx.backends.ports,
          label,
          cpuProf: ctx.cpuProf,
          cores,
        }),
      );
    }
    return await fn(proxies);
  } catch (e) {
    // A proxy that died explains the failure better than the load tool's complaint; one that
    // is still up may have logged why it answered with errors.
    const message = e instanceof Error ? e.message : String(e);
    const died = proxies.filter((p) => p.server.exited());
    const said = (died.length > 0 ? died : proxies).filter((p) => p.server.output().trim());
    if (said.length === 0) throw e;
    throw new BenchError(
      `${message}\n` +
        said.map((p) =>
          `${p.kind}${p.server.exited() ? " exited" : ""}; its last output:\n` +
          p.server.output().slice(-2000)
        ).join("\n"),
    );
  } finally {
    for (const p of proxies) await p.stop();
    for (const p of proxies) {
      if (p.profileFile) {
        try {
          await Deno.stat(p.profileFile);
          ctx.results.profiles.push({ scenario: label, file: p.profileFile });
        } catch {
          ctx.log(`edgemux wrote no CPU profile for ${label}`);
        }
      }
    }
  }
}

/** One run of `c` against `t`, with the proxy's CPU time around it. */
async function measure(c: Case, t: Target): Promise<{ sample: Sample; argv: string[] }> {
  const before = t.pid === undefined ? 0 : cpuTicks(t.pid);
  const m = await c.run(t, false);
  const sample: Sample = { value: m.value, ops: m.ops, details: m.details };
  if (t.pid !== undefined) {
    const seconds = (cpuTicks(t.pid) - before) / CLOCK_TICKS_PER_SECOND;
    sample.cpuSeconds = seconds;
    sample.cpuPerOp = c.cpuUnit === "s/GB" ? seconds / m.ops : seconds * 1e6 / m.ops;
  }
  return { sample, argv: m.argv };
}

function throughput(spec: ThroughputSpec): Scenario {
  const kinds = spec.proxies ?? ["haproxy", "edgemux"];
  return {
    name: spec.name,
    title: spec.title,
    run: (ctx) =>
      withProxies(ctx, spec.name, kinds, spec.cores ?? 1, async (proxies) => {
        const targets: Target[] = [
          ...(spec.direct === false ? [] : [directTarget(ctx.backends)]),
          ...proxies.map(proxyTarget),
        ];
        const cases = spec.cases(ctx).filter((c) =>
          ctx.caseFilter === undefined || c.name.includes(ctx.caseFilter)
        );
        if (cases.length === 0) throw new BenchError(`no case matches "${ctx.caseFilter}"`);
        const serves = (t: Target, c: Case) => t.serves.has(c.traffic);
        for (const t of targets) {
          if (cases.some((c) => serves(t, c))) await spec.check(ctx, t);
        }
        const results: CaseResult[] = cases.map((c) => ({
          scenario: spec.name,
          case: c.name,
          unit: c.unit,
          cpuUnit: c.cpuUnit,
          rounds: [],
          command: "",
        }));
        // nginx needs no warming up; the proxies get a short run of each case (JIT, pools,
        // session caches) before anything is recorded.
        for (const c of cases) {
          if (c.warm === false) continue;
          for (const t of targets) {
            if (t.pid !== undefined && serves(t, c)) await c.run(t, true);
          }
        }
        for (let round = 0; round < ctx.rounds; round++) {
          for (const [i, c] of cases.entries()) {
            const row: Partial<Record<TargetName, Sample>> = {};
            for (const t of targets) {
              if (!serves(t, c)) continue;
              const { sample, argv } = await measure(c, t);
              row[t.name] = sample;
              if (t.name === "edgemux") results[i].command = formatCommand(argv);
              ctx.log(
                `  round ${round + 1} ${c.name} ${t.name}: ${sample.value.toFixed(1)} ${c.unit}` +
                  (sample.cpuPerOp !== undefined
                    ? `, CPU ${sample.cpuPerOp.toFixed(2)} ${c.cpuUnit}`
                    : ""),
              );
            }
            results[i].rounds.push(row);
          }
        }
        ctx.results.cases.push(...results);
      }),
  };
}

const https = (name: string, port: number, path = "/") => `https://${name}:${port}${path}`;

/** Case names the summary table of issue 12 picks rows by. */
export const CASES = {
  iperf1: "iperf3, 1 stream",
  iperf4: "iperf3, 4 streams (-P 4)",
  download: (big: boolean) => `download ${big ? "1 GiB" : "256 MiB"} (curl)`,
  passthroughKeepAlive: "keep-alive, wrk -c10",
  passthroughNew: "new TLS 1.3 connections, ab -c10",
  edgeKeepAlive: "HTTP/1.1 keep-alive, wrk -c10",
  edgeKeepAlive100: "HTTP/1.1 keep-alive, wrk -c100",
  edgeNew: "new TLS 1.3 connections, ab -c10",
  edgeH2: "HTTP/2, h2load -c32 -m10",
  redirectKeepAlive: "keep-alive, wrk -c10",
  redirectNew: "new connections, ab -c10",
  multiEdgeKeepAlive: "edge, HTTP/1.1 keep-alive, wrk -t2 -c100",
  multiEdgeNew: "edge, new TLS 1.3 connections, ab -c10",
  multiPassthroughNew: "passthrough, new TLS 1.3 connections, ab -c10",
} as const;

/** TCP forward: iperf3 through a plain TCP relay. */
export const tcpForward: Scenario = throughput({
  name: "tcp",
  title: "TCP forward (iperf3)",
  cases: (ctx) => [
    iperfCase(ctx, CASES.iperf1, 1),
    iperfCase(ctx, CASES.iperf4, 4, false),
  ],
  check: async () => {},
});

function passthroughCheck(_ctx: Context, t: Target): Promise<void> {
  return curlCheck(`passthrough → ${t.name}`, {
    url: https(NAMES.passthrough, t.passthroughPort),
    status: 200,
    body: BODIES.vault,
  });
}

/** TLS passthrough: bytes relayed untouched to an nginx that ends TLS itself. */
export const passthrough: Scenario = throughput({
  name: "passthrough",
  title: "TLS passthrough (nginx ends TLS)",
  cases: (ctx) => [
    downloadCase(ctx, CASES.download(ctx.durations.download === "big")),
    wrkCase(
      ctx,
      CASES.passthroughKeepAlive,
      "passthrough",
      10,
      (t) => https(NAMES.passthrough, t.passthroughPort),
    ),
    abCase(
      ctx,
      CASES.passthroughNew,
      "passthrough",
      true,
      (t) => https(NAMES.passthrough, t.passthroughPort),
    ),
  ],
  check: passthroughCheck,
});

async function edgeCheck(_ctx: Context, t: Target): Promise<void> {
  for (const http2 of [false, true]) {
    await curlCheck(`edge (${http2 ? "h2" : "http/1.1"}) → ${t.name}`, {
      url: https(t.edgeName, t.edgePort),
      http2,
      httpVersion: http2 ? "2" : "1.1",
      status: 200,
      body: BODIES.plain,
    });
  }
}

/** Edge: TLS ends at the proxy, plain HTTP to nginx. */
export const edge: Scenario = throughput({
  name: "edge",
  title: "Edge: TLS ends at the proxy, HTTP/1.1 to the backend",
  proxies: ["haproxy", "edgemux", "caddy"],
  cases: (ctx) => [
    wrkCase(ctx, CASES.edgeKeepAlive, "edge", 10, (t) => https(t.edgeName, t.edgePort)),
    {
      // The -c10 case has warmed up the same path.
      ...wrkCase(ctx, CASES.edgeKeepAlive100, "edge", 100, (t) => https(t.edgeName, t.edgePort)),
      warm: false,
    },
    abCase(ctx, CASES.edgeNew, "edge", true, (t) => https(t.edgeName, t.edgePort)),
    h2loadCase(ctx, CASES.edgeH2),
  ],
  check: edgeCheck,
});

/** Reencrypt: TLS ends at the proxy, a new TLS connection to nginx. */
export const reencrypt: Scenario = throughput({
  name: "reencrypt",
  title: "Reencrypt: TLS ends at the proxy, TLS again to the backend",
  proxies: ["haproxy", "edgemux", "caddy"],
  cases: (ctx) => [
    wrkCase(
      ctx,
      "HTTP/1.1 keep-alive, wrk -c10",
      "reencrypt",
      10,
      (t) => https(t.reencryptName, t.reencryptPort),
    ),
  ],
  check: (_ctx, t) =>
    curlCheck(`reencrypt → ${t.name}`, {
      url: https(t.reencryptName, t.reencryptPort),
      status: 200,
      body: BODIES.internal,
    }),
});

const REDIRECT_PATH = "/bench/page?x=1";
const redirectUrl = (t: Target) => `http://${NAMES.redirect}:${t.redirectPort}${REDIRECT_PATH}`;

/** The plain-HTTP listener answering 308 to https. */
export const redirect: Scenario = throughput({
  name: "redirect",
  title: "Port 80: 308 redirect to https",
  proxies: ["haproxy", "edgemux", "caddy"],
  cases: (ctx) => [
    wrkCase(ctx, CASES.redirectKeepAlive, "redirect", 10, redirectUrl),
    abCase(ctx, CASES.redirectNew, "redirect", false, redirectUrl, true),
  ],
  check: (_ctx, t) =>
    curlCheck(`redirect → ${t.name}`, {
      url: redirectUrl(t),
      status: 308,
      location: `https://${NAMES.redirect}:${t.redirectHttpsPort}${REDIRECT_PATH}`,
    }),
});

/**
 * Two cores for each proxy: edgemux `workers: 2`, HAProxy `nbthread 2`, Caddy without
 * `GOMAXPROCS`. No direct baseline: nginx keeps its one worker. The load tools share the same
 * two cores, so this shows how each proxy spreads its work, not a ceiling.
 */
export const multicore: Scenario = throughput({
  name: "multicore",
  title: "Two cores: edgemux workers: 2, HAProxy nbthread 2, Caddy without GOMAXPROCS",
  proxies: ["haproxy", "edgemux", "caddy"],
  cores: 2,
  direct: false,
  cases: (ctx) => [
    wrkCase(
      ctx,
      CASES.multiEdgeKeepAlive,
      "edge",
      100,
      (t) => https(t.edgeName, t.edgePort),
      2,
    ),
    abCase(ctx, CASES.multiEdgeNew, "edge", true, (t) => https(t.edgeName, t.edgePort)),
    abCase(
      ctx,
      CASES.multiPassthroughNew,
      "passthrough",
      true,
      (t) => https(NAMES.passthrough, t.passthroughPort),
    ),
  ],
  check: async (ctx, t) => {
    await edgeCheck(ctx, t);
    if (t.serves.has("passthrough")) await passthroughCheck(ctx, t);
  },
});
