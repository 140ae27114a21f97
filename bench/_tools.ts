/**
 * The load tools (wrk, ab, h2load, iperf3, curl): the output each one prints, read into
 * numbers, and checks that fail loudly when a run saw errors instead of real responses.
 * The parsers are pure so that `_tools_test.ts` can pin them to captured output.
 *
 * @module
 */

/** Thrown when a load run completed but its responses show that something was wrong. */
export class BenchError extends Error {
  override name = "BenchError";
}

function num(text: string, re: RegExp, what: string): number {
  const m = text.match(re);
  if (!m) throw new BenchError(`Cannot find ${what} in the tool's output:\n${text}`);
  return Number(m[1]);
}

function optionalNum(text: string, re: RegExp): number {
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

/** Seconds from a wrk/h2load duration such as `5.00s`, `812.34ms` or `1.2m`. */
export function parseDuration(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case "us":
      return v / 1e6;
    case "ms":
      return v / 1e3;
    case "s":
      return v;
    case "m":
      return v * 60;
    case "h":
      return v * 3600;
  }
  throw new BenchError(`Cannot read the duration "${value}${unit}"`);
}

/** What one wrk run reported. */
export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses"). */
  badStatus: number;
  /** Median latency in milliseconds (`--latency`), or NaN without it. */
  p50ms: number;
  /** 99th percentile latency in milliseconds (`--latency`), or NaN without it. */
  p99ms: number;
}

function latencyMs(text: string, pct: string): number {
  const m = text.match(new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m"));
  return m ? parseDuration(m[1], m[2]) * 1000 : NaN;
}

/** Reads wrk 4.x output. */
export function parseWrk(text: string): WrkResult {
  const done = text.match(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m);
  if (!done) throw new BenchError(`Cannot find "N requests in T" in wrk's output:\n${text}`);
  const sock = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  return {
    requests: Number(done[1]),
    seconds: parseDuration(done[2], done[3]),
    rps: num(text, /^Requests\/sec:\s+([\d.]+)/m, "Requests/sec"),
    socketErrors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
    },
    badStatus: optionalNum(text, /Non-2xx or 3xx responses: (\d+)/),
    p50ms: latencyMs(text, "50"),
    p99ms: latencyMs(text, "99"),
  };
}

/** Throws unless the wrk run answered requests without socket errors or error statuses. */
export function checkWrk(r: WrkResult, label: string): void {
  const s = r.socketErrors;
  const errors = s.connect + s.read + s.write + s.timeout;
  if (r.requests === 0 || errors > 0 || r.badStatus > 0) {
    throw new BenchError(
      `${label}: wrk saw ${r.requests} requests, ${r.badStatus} with status >= 400, socket ` +
        `errors connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}`,
    );
  }
}

/** What one ab run reported. */
export interface AbResult {
  complete: number;
  failed: number;
  non2xx: number;
  rps: number;
  seconds: number;
  /** The TLS line, e.g. `TLSv1.3,TLS_AES_256_GCM_SHA384,256,256`, or "" for plain HTTP. */
  tls: string;
}

/** Reads ApacheBench 2.3 output. */
export function parseAb(text: string): AbResult {
  return {
    complete: num(text, /^Complete requests:\s+(\d+)/m, "Complete requests"),
    failed: num(text, /^Failed requests:\s+(\d+)/m, "Failed requests"),
    non2xx: optionalNum(text, /^Non-2xx responses:\s+(\d+)/m),
    rps: num(text, /^Requests per second:\s+([\d.]+)/m, "Requests per second"),
    seconds: num(text, /^Time taken for tests:\s+([\d.]+) seconds/m, "Time taken for tests"),
    tls: text.match(/^SSL\/TLS Protocol:\s+(\S+)/m)?.[1] ?? "",
  };
}

/**
 * Throws unless ab completed requests without failures, every one with a 2xx status (or, with
 * `redirects`, every one with another status: ab counts 3xx as "Non-2xx"). When `-t` ends a
 * run, ab may count the statuses of a few requests it did not count as complete, so for
 * redirects "at least every completed one" is the test.
 */
export function checkAb(r: AbResult, label: string, redirects = false): void {
  const statusOk = redirects ? r.non2xx >= r.complete : r.non2xx === 0;
  if (r.complete === 0 || r.failed > 0 || !statusOk) {
    throw new BenchError(
      `${label}: ab completed ${r.complete} requests, ${r.failed} failed, ${r.non2xx} with a ` +
        `status other than 2xx (expected ${redirects ? "all" : "none"})`,
    );
  }
}

/** What one h2load run reported. */
export interface H2loadResult {
  protocol: string;
  rps: number;
  seconds: number;
  /** Requests started but not done when a `-D` run ended: still in flight. */
  inFlight: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status2xx: number;
  /** Responses with a 3xx, 4xx or 5xx status. */
  statusOther: number;
  /** h2load's `status codes:` line, for error messages. */
  statusLine: string;
}

/** Reads h2load (nghttp2 1.5x) output. */
export function parseH2load(text: string): H2loadResult {
  const fin = text.match(/^finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req\/s/m);
  if (!fin) throw new BenchError(`Cannot find "finished in" in h2load's output:\n${text}`);
  const req = text.match(
    /^requests: \d+ total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m,
  );
  if (!req) throw new BenchError(`Cannot find the "requests:" line in h2load's output:\n${text}`);
  return {
    protocol: text.match(/^Application protocol: (\S+)/m)?.[1] ?? "",
    seconds: parseDuration(fin[1], fin[2]),
    rps: Number(fin[3]),
    inFlight: Number(req[1]) - Number(req[2]),
    succeeded: Number(req[3]),
    failed: Number(req[4]),
    errored: Number(req[5]),
    timeout: Number(req[6]),
    status2xx: optionalNum(text, /^status codes: (\d+) 2xx/m),
    statusOther: optionalNum(text, /^status codes: .* (\d+) 3xx/m) +
      optionalNum(text, /^status codes: .* (\d+) 4xx/m) +
      optionalNum(text, /^status codes: .* (\d+) 5xx/m),
    statusLine: text.match(/^status codes: .*$/m)?.[0] ?? "",
  };
}

/**
 * Throws unless h2load negotiated `protocol` and every request succeeded with a 2xx status. A
 * `-D` run ends with requests in flight; h2load counts the status of those whose response head
 * had arrived (a server that sends the head and the body in separate frames, like Caddy, has
 * many), so up to that many more 2xx than successes are expected.
 */
export function checkH2load(r: H2loadResult, protocol: string, label: string): void {
  const extra2xx = r.status2xx - r.succeeded;
  if (
    r.protocol !== protocol || r.succeeded === 0 || r.failed + r.errored + r.timeout > 0 ||
    r.statusOther > 0 || extra2xx < 0 || extra2xx > r.inFlight
  ) {
    throw new BenchError(
      `${label}: h2load negotiated "${r.protocol}" (expected ${protocol}), ${r.succeeded} ` +
        `succeeded (${r.status2xx} 2xx, ${r.statusOther} other statuses, ${r.inFlight} in ` +
        `flight at the end), ${r.failed} failed, ${r.errored} errored, ${r.timeout} timed ` +
        `out; ${r.statusLine || "no status codes line"}`,
    );
  }
}

/** What one iperf3 client run reported (received side). */
export interface IperfResult {
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second: number; bytes: number; seconds: number } };
}

/** Reads `iperf3 -c … -J` output. */
export function parseIperf(text: string): IperfResult {
  let json: IperfJson;
  try {
    json = JSON.parse(text) as IperfJson;
  } catch {
    throw new BenchError(`iperf3 did not print JSON:\n${text}`);
  }
  if (json.error) throw new BenchError(`iperf3 failed: ${json.error}`);
  const sum = json.end?.sum_received;
  if (!sum || !(sum.bytes > 0)) {
    throw new BenchError(`iperf3 received no data:\n${text.slice(0, 2000)}`);
  }
  return { bitsPerSecond: sum.bits_per_second, bytes: sum.bytes, seconds: sum.seconds };
}

/** What `curl -w` reported for a download with {@linkcode CURL_WRITE_OUT}. */
export interface CurlResult {
  status: number;
  bytes: number;
  seconds: number;
}

/** The `-w` format {@linkcode parseCurl} reads. */
export const CURL_WRITE_OUT = "%{http_code} %{size_download} %{time_total}";

/** Reads the line {@linkcode CURL_WRITE_OUT} made. */
export function parseCurl(text: string): CurlResult {
  const m = text.trim().match(/^(\d{3}) (\d+) ([\d.]+)$/);
  if (!m) throw new BenchError(`Cannot read curl's -w output "${text.trim()}"`);
  return { status: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) };
}

/** One result of `deno bench --json`. */
export interface MicroResult {
  file: string;
  group: string | null;
  name: string;
  avgNs: number;
  p75Ns: number;
  n: number;
}

interface DenoBenchJson {
  benches: {
    origin: string;
    group: string | null;
    name: string;
    results: { ok?: { n: number; avg: number; p75: number } }[];
  }[];
}

/** Reads `deno bench --json` output; `root` is stripped from file URLs. */
export function parseDenoBench(text: string, root: string): MicroResult[] {
  const start = text.indexOf("{");
  if (start < 0) throw new BenchError(`deno bench printed no JSON:\n${text}`);
  const json = JSON.parse(text.slice(start)) as DenoBenchJson;
  const out: MicroResult[] = [];
  for (const b of json.benches) {
    const ok = b.results[0]?.ok;
    if (!ok) throw new BenchError(`deno bench "${b.name}" failed: ${JSON.stringify(b.results)}`);
    out.push({
      file: b.origin.replace(`file://${root}/`, ""),
      group: b.group,
      name: b.name,
      avgNs: ok.avg,
      p75Ns: ok.p75,
      n: ok.n,
    });
  }
  return out;
}

/** What bench/holder.ts printed after reaching a step. */
export interface HolderLine {
  held: number;
  errors: number;
  /** The first error's message, if any. */
  firstError?: string;
}

/** Reads bench/holder.ts's `held N errors E[ first MESSAGE]` line. */
export function parseHolderLine(line: string): HolderLine {
  const m = line.match(/^held (\d+) errors (\d+)(?: first (.*))?$/);
  if (!m) throw new BenchError(`Cannot read the holder's line "${line}"`);
  return {
    held: Number(m[1]),
    errors: Number(m[2]),
    ...(m[3] !== undefined ? { firstError: m[3] } : {}),
  };
}

/** Reads `caddy version` output: `2.6.2` from Debian's build, `v2.6.2 h1:…` from upstream's. */
export function parseCaddyVersion(text: string): string {
  const m = text.trim().match(/^v?(\d+\.\d+\.\d+\S*)/);
  if (!m) throw new BenchError(`Cannot read caddy's version from "${text.trim()}"`);
  return m[1];
}
