/**
 * The pieces throughput scenarios are made of: the targets (direct, or a proxy's listeners),
 * the load-tool cases (wrk, ab, h2load, iperf3, curl), and the curl checks that every target
 * gives a real answer from the right backend before anything is measured. Every tool run is
 * bounded in time and in count, and fails loudly when the responses were errors.
 *
 * @module
 */

import { type CommandResult, formatCommand, runCommand, sleep } from "../_proc.ts";
import {
  type Backends,
  CA_FILE,
  DIRECT_REDIRECT_HTTPS_PORT,
  FILE_SIZES,
  FILES,
  type NameResolver,
  NAMES,
} from "../_setup.ts";
import { type Proxy, SERVES, type Traffic } from "../_proxies.ts";
import {
  BenchError,
  checkAb,
  checkH2load,
  checkWrk,
  CURL_WRITE_OUT,
  parseAb,
  parseCurl,
  parseH2load,
  parseIperf,
  parseWrk,
} from "../_tools.ts";
import type { Context, TargetName } from "../_types.ts";

// ---------------------------------------------------------------------------------------------
// Targets

/** Where one target answers, for every kind of traffic. */
export interface Target {
  name: TargetName;
  /** What it can serve; a case of any other traffic skips it. */
  serves: ReadonlySet<Traffic>;
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

/** The backends themselves, doing the job alone. */
export function directTarget(b: Backends): Target {
  return {
    name: "direct",
    serves: new Set(["tcp", "passthrough", "edge", "reencrypt", "redirect"]),
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

/** A proxy's listeners. */
export function proxyTarget(p: Proxy): Target {
  return {
    name: p.kind,
    serves: SERVES[p.kind],
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

export interface Measured {
  value: number;
  ops: number;
  details: Record<string, number | string>;
  /** The load tool's command line (without the {@linkcode NameResolver} wrapper). */
  argv: string[];
}

/** One thing to measure against each target that serves its traffic. */
export interface Case {
  name: string;
  traffic: Traffic;
  unit: string;
  /**
   * `µs/req`: CPU microseconds per request; `µs/conn`: per connection (one request each);
   * `s/GB`: CPU seconds per gigabyte.
   */
  cpuUnit: "µs/req" | "µs/conn" | "s/GB";
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
export function requestCase(
  name: string,
  traffic: Traffic,
  seconds: number,
  measure: (t: Target, seconds: number) => Promise<Measured>,
  cpuUnit: "µs/req" | "µs/conn" = "µs/req",
): Case {
  return {
    name,
    traffic,
    unit: "req/s",
    cpuUnit,
    run: (t, warm) => measure(t, warm ? 1 : seconds),
  };
}

/** wrk with `connections` kept-alive connections over `threads` threads. */
export function wrkCase(
  ctx: Context,
  name: string,
  traffic: Traffic,
  connections: number,
  url: (t: Target) => string,
  threads = 1,
): Case {
  return requestCase(name, traffic, ctx.durations.wrkSeconds, async (t, seconds) => {
    const argv = ["wrk", `-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--latency", url(t)];
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

/**
 * ab, 10 at a time, a new connection per request (ab never resumes TLS sessions, so every one
 * is a full handshake); CPU time is per connection.
 */
export function abCase(
  ctx: Context,
  name: string,
  traffic: Traffic,
  tls: boolean,
  url: (t: Target) => string,
  redirects = false,
): Case {
  return requestCase(name, traffic, ctx.durations.abSeconds, async (t, seconds) => {
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
  }, "µs/conn");
}

/** h2load: 32 connections with 10 concurrent streams each, to the edge name. */
export function h2loadCase(ctx: Context, name: string): Case {
  return requestCase(name, "edge", ctx.durations.h2loadSeconds, async (t, seconds) => {
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

export function iperfCase(ctx: Context, name: string, streams: number, warm = true): Case {
  return {
    name,
    traffic: "tcp",
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

export function downloadCase(ctx: Context, name: string): Case {
  return {
    name,
    traffic: "passthrough",
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

export interface CurlCheck {
  /** Its host name is resolved to 127.0.0.1. */
  url: string;
  http2?: boolean;
  status: number;
  body?: string;
  location?: string;
  httpVersion?: string;
}

export async function curlCheck(label: string, c: CurlCheck): Promise<void> {
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
