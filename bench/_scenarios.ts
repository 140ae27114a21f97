/**
 * The benchmark's scenarios. Each throughput scenario is a list of cases; every case runs
 * against the three targets (direct, haproxy, edgemux) in that order, round after round, so
 * the ratios compare runs made seconds apart. Every run is bounded in time and in count, and
 * fails loudly when the responses were errors rather than answers.
 *
 * @module
 */

import {
  CLOCK_TICKS_PER_SECOND,
  type CommandResult,
  cpuTicks,
  formatCommand,
  openFds,
  rssKiB,
  runCommand,
  sleep,
  startInteractive,
} from "./_proc.ts";
import {
  type Backends,
  BODIES,
  CA_FILE,
  DIRECT_REDIRECT_HTTPS_PORT,
  FILE_SIZES,
  FILES,
  type NameResolver,
  NAMES,
  type Proxy,
  REPO_ROOT,
  startProxy,
} from "./_setup.ts";
import {
  BenchError,
  checkAb,
  checkH2load,
  checkWrk,
  CURL_WRITE_OUT,
  type MicroResult,
  parseAb,
  parseCurl,
  parseDenoBench,
  parseH2load,
  parseIperf,
  parseWrk,
} from "./_tools.ts";

/** The three ways a client reaches a backend. */
export type TargetName = "direct" | "haproxy" | "edgemux";
export const TARGET_NAMES: readonly TargetName[] = ["direct", "haproxy", "edgemux"];

/** Run lengths: the full run, or `--quick`. */
export interface Durations {
  wrkSeconds: number;
  iperfSeconds: number;
  h2loadSeconds: number;
  /** How long each ab run lasts (at most {@linkcode AB_MAX_REQUESTS} requests). */
  abSeconds: number;
  download: keyof typeof FILES;
  /** Connections held at each memory step. */
  memorySteps: number[];
  memorySettleMs: number;
}

export const FULL: Durations = {
  wrkSeconds: 5,
  iperfSeconds: 3,
  h2loadSeconds: 3,
  abSeconds: 3,
  download: "big",
  memorySteps: [1000, 5000],
  memorySettleMs: 1500,
};

export const QUICK: Durations = {
  wrkSeconds: 2,
  iperfSeconds: 1,
  h2loadSeconds: 1,
  abSeconds: 1,
  download: "small",
  memorySteps: [500, 1000],
  memorySettleMs: 1000,
};

/** One measured run. */
export interface Sample {
  value: number;
  /** What the CPU time is divided by: requests, or gigabytes moved. */
  ops: number;
  /** The proxy's CPU time during the run, in seconds (none for direct). */
  cpuSeconds?: number;
  /** CPU time per op in the case's CPU unit (none for direct). */
  cpuPerOp?: number;
  details: Record<string, number | string>;
}

/** All rounds of one case. */
export interface CaseResult {
  scenario: string;
  case: string;
  unit: string;
  cpuUnit: string;
  /** One entry per round. */
  rounds: Partial<Record<TargetName, Sample>>[];
  /** The command run against edgemux in the last round, for reproduction. */
  command: string;
}

/** RSS of one proxy holding connections of one kind. */
export interface MemoryResult {
  kind: string;
  proxy: "haproxy" | "edgemux";
  baselineKiB: number;
  baselineFds: number;
  steps: { connections: number; rssKiB: number; settledKiB: number; fds: number }[];
}

/** One scenario that could not finish, and why. */
export interface ScenarioError {
  scenario: string;
  message: string;
}

/** Everything a run produced. */
export interface Results {
  cases: CaseResult[];
  memory: MemoryResult[];
  micro: MicroResult[];
  errors: ScenarioError[];
  /** Per scenario: where edgemux's CPU profile was saved (with `--cpu-prof`). */
  profiles: { scenario: string; file: string }[];
}

/** What scenarios need from the harness. */
export interface Context {
  dir: string;
  durations: Durations;
  rounds: number;
  cpuProf: boolean;
  /** Run only the cases whose name contains this (`--case`). */
  caseFilter?: string;
  backends: Backends;
  names: NameResolver;
  /** A captured ClientHello for the passthrough name. */
  helloFile: string;
  results: Results;
  log(message: string): void;
}

/** A scenario: a name for `--only`, a title for the report, and what it does. */
export interface Scenario {
  name: string;
  title: string;
  run(ctx: Context): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Targets

/** Where one target answers, for every kind of traffic. */
export interface Target {
  name: TargetName;
  /** The process whose CPU time is measured (none for direct). */
  pid?: number;
  iperfPort: number;
  passthroughPort: number;
  edgePort: number;
  edgeName: string;
  reencryptPort: number;
  reencryptName: string;
  redirectPort: number;
  /** The port the redirect's Location must name. */
  redirectHttpsPort: number;
}

function directTarget(b: Backends): Target {
  return {
    name: "direct",
    iperfPort: b.ports.iperf,
    passthroughPort: b.ports.vault,
    edgePort: b.ports.edgeDirect,
    edgeName: NAMES.edge,
    reencryptPort: b.ports.internal,
    reencryptName: NAMES.internal,
    redirectPort: b.ports.redirectDirect,
    redirectHttpsPort: DIRECT_REDIRECT_HTTPS_PORT,
  };
}

function proxyTarget(p: Proxy): Target {
  return {
    name: p.kind,
    pid: p.server.pid,
    iperfPort: p.ports.fwd,
    passthroughPort: p.ports.https,
    edgePort: p.ports.https,
    edgeName: NAMES.edge,
    reencryptPort: p.ports.https,
    reencryptName: NAMES.reencrypt,
    redirectPort: p.ports.http,
    redirectHttpsPort: p.ports.https,
  };
}

// ---------------------------------------------------------------------------------------------
// Cases

interface Measured {
  value: number;
  ops: number;
  details: Record<string, number | string>;
  /** The load tool's command line (without the {@linkcode NameResolver} wrapper). */
  argv: string[];
}

/** One thing to measure against each target. */
interface Case {
  name: string;
  unit: string;
  /** `µs/req`: CPU microseconds per request; `s/GB`: CPU seconds per gigabyte. */
  cpuUnit: "µs/req" | "s/GB";
  /** Whether to warm the proxies up with a short run of this case first (default yes). */
  warm?: boolean;
  /** Runs once; `warm` asks for a short, unrecorded run. */
  run(t: Target, warm: boolean): Promise<Measured>;
}

const TOOL_SLACK_MS = 20_000;
/**
 * A cap on one ab run. Each request is a new connection, and every closed connection holds a
 * client port in TIME_WAIT for a minute (loopback may reuse them: tcp_tw_reuse = 2).
 */
const AB_MAX_REQUESTS = 100_000;

/**
 * Runs a load tool meant to last about `seconds`, killing it well after that. A non-zero exit
 * is an error naming the tool, with what it printed. With `names`, host names resolve through
 * the bench's hosts file.
 */
async function runTool(
  argv: string[],
  seconds: number,
  names?: NameResolver,
): Promise<CommandResult> {
  const out = await runCommand(names ? names.wrap(argv) : argv, {
    timeoutMs: seconds * 1000 + TOOL_SLACK_MS,
  });
  if (out.code !== 0) {
    throw new BenchError(`${argv[0]} exited with ${out.code}: ${out.stderr}\n${out.stdout}`);
  }
  return out;
}

/**
 * A requests-per-second case whose tool runs for `seconds`, or for 1 s when warming up.
 * `measure` gets the target and the length of this run.
 */
function requestCase(
  name: string,
  seconds: number,
  measure: (t: Target, seconds: number) => Promise<Measured>,
): Case {
  return {
    name,
    unit: "req/s",
    cpuUnit: "µs/req",
    run: (t, warm) => measure(t, warm ? 1 : seconds),
  };
}

function wrkCase(
  ctx: Context,
  name: string,
  connections: number,
  url: (t: Target) => string,
): Case {
  return requestCase(name, ctx.durations.wrkSeconds, async (t, seconds) => {
    const argv = ["wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--latency", url(t)];
    const r = parseWrk((await runTool(argv, seconds, ctx.names)).stdout);
    checkWrk(r, `${name} → ${t.name}`);
    return {
      value: r.rps,
      ops: r.requests,
      details: { requests: r.requests, seconds: r.seconds, p50ms: r.p50ms, p99ms: r.p99ms },
      argv,
    };
  });
}

function abCase(
  ctx: Context,
  name: string,
  tls: boolean,
  url: (t: Target) => string,
  redirects = false,
): Case {
  return requestCase(name, ctx.durations.abSeconds, async (t, seconds) => {
    // Bounded by time and by count. -t comes first: it also sets -n 50000, which the
    // later -n replaces.
    const argv = [
      "ab",
      "-q",
      "-t",
      String(seconds),
      "-n",
      String(AB_MAX_REQUESTS),
      "-c",
      "10",
      "-s",
      "10",
      ...(tls ? ["-f", "TLS1.3"] : []),
      url(t),
    ];
    const r = parseAb((await runTool(argv, seconds, ctx.names)).stdout);
    checkAb(r, `${name} → ${t.name}`, redirects);
    if (tls && !r.tls.startsWith("TLSv1.3")) {
      throw new BenchError(`${name} → ${t.name}: ab negotiated "${r.tls}", not TLS 1.3`);
    }
    return {
      value: r.rps,
      ops: r.complete,
      details: { requests: r.complete, seconds: r.seconds, tls: r.tls },
      argv,
    };
  });
}

function h2loadCase(ctx: Context, name: string): Case {
  return requestCase(name, ctx.durations.h2loadSeconds, async (t, seconds) => {
    const argv = [
      "h2load",
      "-t1",
      "-c32",
      "-m10",
      "-D",
      String(seconds),
      `--connect-to=127.0.0.1:${t.edgePort}`,
      `https://${t.edgeName}:${t.edgePort}/`,
    ];
    const r = parseH2load((await runTool(argv, seconds)).stdout);
    checkH2load(r, "h2", `${name} → ${t.name}`);
    return {
      value: r.rps,
      ops: r.succeeded,
      details: { requests: r.succeeded, seconds: r.seconds, protocol: r.protocol },
      argv,
    };
  });
}

function iperfCase(ctx: Context, name: string, streams: number, warm = true): Case {
  return {
    name,
    unit: "Gbit/s",
    cpuUnit: "s/GB",
    warm,
    async run(t, warm) {
      const seconds = warm ? 1 : ctx.durations.iperfSeconds;
      const argv = [
        "iperf3",
        "-c",
        "127.0.0.1",
        "-p",
        String(t.iperfPort),
        "-t",
        String(seconds),
        "-P",
        String(streams),
        "-J",
        "--connect-timeout",
        "5000",
      ];
      // The server takes one test at a time and may still be closing the previous one.
      for (let attempt = 1;; attempt++) {
        const out = await runCommand(argv, { timeoutMs: seconds * 1000 + TOOL_SLACK_MS });
        try {
          const r = parseIperf(out.stdout);
          return {
            value: r.bitsPerSecond / 1e9,
            ops: r.bytes / 1e9,
            details: { bytes: r.bytes, seconds: r.seconds },
            argv,
          };
        } catch (e) {
          const transient = /busy|control socket has closed/.test(String(e));
          if (attempt >= 3 || !transient) throw e;
          await sleep(1000);
        }
      }
    },
  };
}

function downloadCase(ctx: Context, name: string): Case {
  return {
    name,
    unit: "MB/s",
    cpuUnit: "s/GB",
    async run(t, warm) {
      const which = warm ? "small" : ctx.durations.download;
      const url = `https://${NAMES.passthrough}:${t.passthroughPort}${FILES[which]}`;
      const argv = [
        "curl",
        "-sS",
        "--http1.1",
        "--max-time",
        "120",
        "-o",
        "/dev/null",
        "--resolve",
        loopbackResolve(url),
        "--cacert",
        CA_FILE,
        "-w",
        CURL_WRITE_OUT,
        url,
      ];
      const r = parseCurl((await runTool(argv, 120)).stdout);
      if (r.status !== 200 || r.bytes !== FILE_SIZES[which]) {
        throw new BenchError(
          `${name} → ${t.name}: status ${r.status}, ${r.bytes} of ${FILE_SIZES[which]} bytes`,
        );
      }
      return {
        value: r.bytes / r.seconds / 1e6,
        ops: r.bytes / 1e9,
        details: { bytes: r.bytes, seconds: r.seconds },
        argv,
      };
    },
  };
}

/** curl's `--resolve` entry that sends the URL's host name to 127.0.0.1. */
function loopbackResolve(url: string): string {
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.hostname}:${port}:127.0.0.1`;
}

// ---------------------------------------------------------------------------------------------
// Checks before measuring: real answers from the right backend, not error pages

interface CurlCheck {
  /** Its host name is resolved to 127.0.0.1. */
  url: string;
  http2?: boolean;
  status: number;
  body?: string;
  location?: string;
  httpVersion?: string;
}

async function curlCheck(label: string, c: CurlCheck): Promise<void> {
  const argv = [
    "curl",
    "-sS",
    "-i",
    "--max-time",
    "10",
    "--cacert",
    CA_FILE,
    c.http2 ? "--http2" : "--http1.1",
    "--resolve",
    loopbackResolve(c.url),
    c.url,
  ];
  const out = await runCommand(argv, { timeoutMs: 20_000 });
  const text = out.stdout.replaceAll("\r\n", "\n");
  const split = text.indexOf("\n\n");
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? "" : text.slice(split + 2);
  const status = head.match(/^HTTP\/(\S+) (\d{3})/);
  const location = head.match(/^location: (.*)$/im)?.[1].trim();
  const problems: string[] = [];
  if (out.code !== 0) problems.push(`curl exited with ${out.code}: ${out.stderr.trim()}`);
  if (!status || Number(status[2]) !== c.status) problems.push(`status is not ${c.status}`);
  if (c.httpVersion && status?.[1] !== c.httpVersion) {
    problems.push(`HTTP version is not ${c.httpVersion}`);
  }
  if (c.body !== undefined && body !== c.body) {
    problems.push(`body is not ${JSON.stringify(c.body)}`);
  }
  if (c.location !== undefined && location !== c.location) {
    problems.push(`Location is not ${c.location}`);
  }
  if (problems.length > 0) {
    throw new BenchError(
      `${label}: ${problems.join("; ")}\n  command: ${formatCommand(argv)}\n  response:\n${
        text.slice(0, 1000)
      }`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Running a throughput scenario

interface ThroughputSpec {
  name: string;
  title: string;
  cases(ctx: Context): Case[];
  check(ctx: Context, t: Target): Promise<void>;
}

async function withProxies<T>(
  ctx: Context,
  label: string,
  fn: (proxies: Proxy[]) => Promise<T>,
): Promise<T> {
  const proxies: Proxy[] = [];
  try {
    for (const kind of ["haproxy", "edgemux"] as const) {
      proxies.push(
        await startProxy(kind, {
          dir: ctx.dir,
          backends: ctx.backends.ports,
          label,
          cpuProf: ctx.cpuProf,
        }),
      );
    }
    return await fn(proxies);
  } catch (e) {
    // A proxy that died explains the failure better than the load tool's complaint.
    const died = proxies.filter((p) => p.server.exited());
    if (died.length === 0) throw e;
    const message = e instanceof Error ? e.message : String(e);
    throw new BenchError(
      `${message}\n` +
        died.map((p) => `${p.kind} exited; its last output:\n${p.server.output().slice(-2000)}`)
          .join("\n"),
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

function throughput(spec: ThroughputSpec): Scenario {
  return {
    name: spec.name,
    title: spec.title,
    run: (ctx) =>
      withProxies(ctx, spec.name, async (proxies) => {
        const targets: Target[] = [directTarget(ctx.backends), ...proxies.map(proxyTarget)];
        for (const t of targets) await spec.check(ctx, t);
        const cases = spec.cases(ctx).filter((c) =>
          ctx.caseFilter === undefined || c.name.includes(ctx.caseFilter)
        );
        if (cases.length === 0) throw new BenchError(`no case matches "${ctx.caseFilter}"`);
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
          for (const t of targets) if (t.pid !== undefined) await c.run(t, true);
        }
        for (let round = 0; round < ctx.rounds; round++) {
          for (const [i, c] of cases.entries()) {
            const row: Partial<Record<TargetName, Sample>> = {};
            for (const t of targets) {
              const before = t.pid === undefined ? 0 : cpuTicks(t.pid);
              const m = await c.run(t, false);
              const sample: Sample = { value: m.value, ops: m.ops, details: m.details };
              if (t.pid !== undefined) {
                const seconds = (cpuTicks(t.pid) - before) / CLOCK_TICKS_PER_SECOND;
                sample.cpuSeconds = seconds;
                sample.cpuPerOp = c.cpuUnit === "µs/req" ? seconds * 1e6 / m.ops : seconds / m.ops;
              }
              row[t.name] = sample;
              if (t.name === "edgemux") results[i].command = formatCommand(m.argv);
              ctx.log(
                `  round ${round + 1} ${c.name} ${t.name}: ${m.value.toFixed(1)} ${c.unit}` +
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

/** TCP forward: iperf3 through a plain TCP relay. */
export const tcpForward: Scenario = throughput({
  name: "tcp",
  title: "TCP forward (iperf3)",
  cases: (ctx) => [
    iperfCase(ctx, "iperf3, 1 stream", 1),
    iperfCase(ctx, "iperf3, 4 streams (-P 4)", 4, false),
  ],
  check: async () => {},
});

/** TLS passthrough: bytes relayed untouched to an nginx that ends TLS itself. */
export const passthrough: Scenario = throughput({
  name: "passthrough",
  title: "TLS passthrough (nginx ends TLS)",
  cases: (ctx) => [
    downloadCase(ctx, `download ${ctx.durations.download === "big" ? "1 GiB" : "256 MiB"} (curl)`),
    wrkCase(ctx, "keep-alive, wrk -c10", 10, (t) => https(NAMES.passthrough, t.passthroughPort)),
    abCase(
      ctx,
      "new TLS 1.3 connections, ab -c10",
      true,
      (t) => https(NAMES.passthrough, t.passthroughPort),
    ),
  ],
  check: (_ctx, t) =>
    curlCheck(`passthrough → ${t.name}`, {
      url: https(NAMES.passthrough, t.passthroughPort),
      status: 200,
      body: BODIES.vault,
    }),
});

/** Edge: TLS ends at the proxy, plain HTTP to nginx. */
export const edge: Scenario = throughput({
  name: "edge",
  title: "Edge: TLS ends at the proxy, HTTP/1.1 to the backend",
  cases: (ctx) => [
    wrkCase(ctx, "HTTP/1.1 keep-alive, wrk -c10", 10, (t) => https(t.edgeName, t.edgePort)),
    {
      // The -c10 case has warmed up the same path.
      ...wrkCase(ctx, "HTTP/1.1 keep-alive, wrk -c100", 100, (t) => https(t.edgeName, t.edgePort)),
      warm: false,
    },
    abCase(ctx, "new TLS 1.3 connections, ab -c10", true, (t) => https(t.edgeName, t.edgePort)),
    h2loadCase(ctx, "HTTP/2, h2load -c32 -m10"),
  ],
  check: async (_ctx, t) => {
    for (const http2 of [false, true]) {
      await curlCheck(`edge (${http2 ? "h2" : "http/1.1"}) → ${t.name}`, {
        url: https(t.edgeName, t.edgePort),
        http2,
        httpVersion: http2 ? "2" : "1.1",
        status: 200,
        body: BODIES.plain,
      });
    }
  },
});

/** Reencrypt: TLS ends at the proxy, a new TLS connection to nginx. */
export const reencrypt: Scenario = throughput({
  name: "reencrypt",
  title: "Reencrypt: TLS ends at the proxy, TLS again to the backend",
  cases: (ctx) => [
    wrkCase(
      ctx,
      "HTTP/1.1 keep-alive, wrk -c10",
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

/** The plain-HTTP listener answering 308 to https. */
export const redirect: Scenario = throughput({
  name: "redirect",
  title: "Port 80: 308 redirect to https",
  cases: (ctx) => [
    wrkCase(
      ctx,
      "keep-alive, wrk -c10",
      10,
      (t) => `http://${NAMES.redirect}:${t.redirectPort}${REDIRECT_PATH}`,
    ),
    abCase(
      ctx,
      "new connections, ab -c10",
      false,
      (t) => `http://${NAMES.redirect}:${t.redirectPort}${REDIRECT_PATH}`,
      true,
    ),
  ],
  check: (_ctx, t) =>
    curlCheck(`redirect → ${t.name}`, {
      url: `http://${NAMES.redirect}:${t.redirectPort}${REDIRECT_PATH}`,
      status: 308,
      location: `https://${NAMES.redirect}:${t.redirectHttpsPort}${REDIRECT_PATH}`,
    }),
});

// ---------------------------------------------------------------------------------------------
// Memory

interface MemoryKind {
  kind: string;
  /** Descriptors a proxy holds per connection of this kind once it has set it up. */
  fdsPerConn: number;
  port(p: Proxy): number;
  holderArgs(ctx: Context): string[];
  /** One connection of this kind, opened and closed by the harness, to warm the proxy up. */
  warm(port: number, ctx: Context): Promise<void>;
}

const SERVER_NAME: unique symbol = Symbol.for("unstableServerName") as never;

const MEMORY_KINDS: MemoryKind[] = [
  {
    kind: "idle TCP through a forward",
    fdsPerConn: 2,
    port: (p) => p.ports.fwdHttp,
    holderArgs: () => ["--kind", "tcp"],
    async warm(port) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      await c.read(new Uint8Array(4096));
      c.close();
    },
  },
  {
    kind: "ClientHello to a passthrough name, then held",
    fdsPerConn: 2,
    port: (p) => p.ports.https,
    holderArgs: (ctx) => ["--kind", "hello", "--hello", ctx.helloFile],
    async warm(port, ctx) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(await Deno.readFile(ctx.helloFile));
      await c.read(new Uint8Array(16384));
      c.close();
    },
  },
  {
    kind: "TLS handshake with an edge name, then idle",
    fdsPerConn: 3,
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
      await c.handshake();
      c.close();
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
  for (let i = 0; i < 20; i++) {
    await withTimeout(kind.warm(port, ctx), 10_000, `warming ${proxy.kind} up (${kind.kind})`);
  }
  await sleep(1000);
  const result: MemoryResult = {
    kind: kind.kind,
    proxy: proxy.kind,
    baselineKiB: rssKiB(pid),
    baselineFds: openFds(pid),
    steps: [],
  };
  const steps = ctx.durations.memorySteps;
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
      const m = line.match(/^held (\d+) errors (\d+)/);
      if (!m || Number(m[1]) !== step || Number(m[2]) !== 0) {
        throw new BenchError(`${kind.kind} → ${proxy.kind}: the holder said "${line}"`);
      }
      // The holder has sent its bytes; the proxy may still be routing the last connections
      // and dialling their backends. Wait until it holds every one.
      const fds = await settledFds(pid, result.baselineFds + step * kind.fdsPerConn);
      if (fds < result.baselineFds + step * kind.fdsPerConn) {
        ctx.log(`  warning: ${proxy.kind} holds ${fds} descriptors, fewer than expected`);
      }
      const rss = rssKiB(pid);
      await sleep(ctx.durations.memorySettleMs);
      const settled = rssKiB(pid);
      result.steps.push({ connections: step, rssKiB: rss, settledKiB: settled, fds });
      ctx.log(
        `  ${proxy.kind} ${kind.kind}: ${step} held, RSS ${result.baselineKiB} → ${settled} KiB, ` +
          `${((settled - result.baselineKiB) / step).toFixed(1)} KiB/conn, ` +
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
    for (const kind of MEMORY_KINDS) {
      for (const proxyKind of ["haproxy", "edgemux"] as const) {
        const proxy = await startProxy(proxyKind, {
          dir: ctx.dir,
          backends: ctx.backends.ports,
          label: `memory-${MEMORY_KINDS.indexOf(kind)}`,
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

// ---------------------------------------------------------------------------------------------
// deno bench

/** The `_bench.ts` files beside edgemux's hot code. */
export const MICRO_FILES = [
  "proxy/sniff/client_hello_bench.ts",
  "routing/http_router_bench.ts",
  "proxy/http/wire/head_bench.ts",
];

/** `deno bench` on the microbenchmarks beside the hot code. */
export const micro: Scenario = {
  name: "micro",
  title: "Microbenchmarks (deno bench)",
  async run(ctx) {
    const argv = [Deno.execPath(), "bench", "--json", ...MICRO_FILES];
    const out = await runCommand(argv, { timeoutMs: 300_000, cwd: REPO_ROOT });
    if (out.code !== 0) {
      throw new BenchError(`deno bench exited with ${out.code}:\n${out.stderr}\n${out.stdout}`);
    }
    ctx.results.micro.push(...parseDenoBench(out.stdout, REPO_ROOT));
  },
};

/** Every scenario, in the order a full run takes them. */
export const SCENARIOS: readonly Scenario[] = [
  tcpForward,
  passthrough,
  edge,
  reencrypt,
  redirect,
  memory,
  micro,
];
