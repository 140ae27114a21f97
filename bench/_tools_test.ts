import assert from "node:assert/strict";
import {
  BenchError,
  checkAb,
  checkH2load,
  checkWrk,
  parseAb,
  parseCaddyVersion,
  parseCurl,
  parseDenoBench,
  parseH2load,
  parseHolderLine,
  parseIperf,
  parseWrk,
} from "./_tools.ts";
import { pairedRatios, summarize } from "./_stats.ts";
import { statFields } from "./_proc.ts";
import { hotFunctions } from "./_profile.ts";

// Output captured from the Debian 12 tools on the project's machine (trimmed).
const WRK_OK = `Running 1s test @ http://127.0.0.1:29871/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   442.86us    0.95ms   7.13ms   86.77%
    Req/Sec    79.40k    28.05k  148.20k    90.00%
  Latency Distribution
     50%   12.00us
     75%  169.00us
     90%    1.81ms
     99%    4.20ms
  79279 requests in 1.01s, 11.34MB read
Requests/sec:  78727.75
Transfer/sec:     11.26MB
`;

const WRK_ERRORS = `Running 1s test @ http://127.0.0.1:29871/e
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   457.61us    0.89ms   6.13ms   85.76%
    Req/Sec    59.78k    51.54k  116.46k    90.00%
  59324 requests in 1.00s, 21.16MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 59324
Requests/sec:  59257.51
Transfer/sec:     21.14MB
`;

const AB_TLS = `Server Software:        nginx/1.22.1
Server Hostname:        127.0.0.1
Server Port:            29872
SSL/TLS Protocol:       TLSv1.3,TLS_AES_256_GCM_SHA384,256,256
Server Temp Key:        X25519 253 bits

Document Path:          /
Document Length:        3 bytes

Concurrency Level:      2
Time taken for tests:   0.318 seconds
Complete requests:      300
Failed requests:        0
Total transferred:      43500 bytes
HTML transferred:       900 bytes
Requests per second:    944.06 [#/sec] (mean)
Time per request:       2.119 [ms] (mean)
`;

const AB_REDIRECTS = `Document Path:          /e
Concurrency Level:      2
Time taken for tests:   0.001 seconds
Complete requests:      20
Failed requests:        0
Non-2xx responses:      20
Requests per second:    23980.82 [#/sec] (mean)
`;

const H2LOAD = `TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2

finished in 3.00s, 52964.00 req/s, 3.10MB/s
requests: 158892 total, 159212 started, 158892 done, 158892 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 158892 2xx, 0 3xx, 0 4xx, 0 5xx
`;

// A -D run against Caddy: 88 responses had their head but not their end when time ran out.
const H2LOAD_IN_FLIGHT = `Application protocol: h2

finished in 1.00s, 1957.00 req/s, 150.00KB/s
requests: 1957 total, 2277 started, 1957 done, 1957 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 2045 2xx, 0 3xx, 0 4xx, 0 5xx
`;

Deno.test("parseWrk() reads the request count, rate and latency percentiles", () => {
  const r = parseWrk(WRK_OK);
  assert.equal(r.requests, 79279);
  assert.equal(r.seconds, 1.01);
  assert.equal(r.rps, 78727.75);
  assert.equal(r.p50ms, 0.012);
  assert.equal(r.p99ms, 4.2);
  assert.equal(r.badStatus, 0);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  checkWrk(r, "ok");
});

Deno.test("checkWrk() fails a run with error statuses or socket errors", () => {
  const r = parseWrk(WRK_ERRORS);
  assert.equal(r.badStatus, 59324);
  assert.equal(r.socketErrors.read, 3);
  assert.throws(() => checkWrk(r, "errors"), BenchError);
});

Deno.test("parseWrk() throws on output without a summary", () => {
  assert.throws(() => parseWrk("unable to connect to 127.0.0.1:1 Connection refused"), BenchError);
});

Deno.test("parseAb() reads TLS runs and checkAb() accepts them", () => {
  const r = parseAb(AB_TLS);
  assert.equal(r.complete, 300);
  assert.equal(r.failed, 0);
  assert.equal(r.non2xx, 0);
  assert.equal(r.rps, 944.06);
  assert.equal(r.tls, "TLSv1.3,TLS_AES_256_GCM_SHA384,256,256");
  checkAb(r, "tls");
  assert.throws(() => checkAb(r, "tls", true), BenchError);
});

Deno.test("checkAb() wants every response to be non-2xx for redirects, and none otherwise", () => {
  const r = parseAb(AB_REDIRECTS);
  assert.equal(r.non2xx, 20);
  assert.equal(r.tls, "");
  checkAb(r, "redirects", true);
  // ab -t may count the statuses of a few requests it stopped before counting them complete.
  checkAb({ ...r, non2xx: 22 }, "redirects", true);
  assert.throws(() => checkAb({ ...r, non2xx: 19 }, "redirects", true), BenchError);
  assert.throws(() => checkAb(r, "plain"), BenchError);
});

Deno.test("parseH2load() reads the protocol and counts; checkH2load() wants h2 and no failures", () => {
  const r = parseH2load(H2LOAD);
  assert.equal(r.protocol, "h2");
  assert.equal(r.rps, 52964);
  assert.equal(r.succeeded, 158892);
  assert.equal(r.status2xx, 158892);
  checkH2load(r, "h2", "ok");
  assert.throws(() => checkH2load({ ...r, protocol: "http/1.1" }, "h2", "h1"), BenchError);
  assert.throws(() => checkH2load({ ...r, errored: 1 }, "h2", "errored"), BenchError);
  assert.throws(() => checkH2load({ ...r, status2xx: 5 }, "h2", "5xx"), BenchError);
  assert.throws(() => checkH2load({ ...r, statusOther: 1 }, "h2", "4xx"), BenchError);
});

Deno.test("checkH2load() accepts 2xx heads of requests still in flight when -D ended", () => {
  const r = parseH2load(H2LOAD_IN_FLIGHT);
  assert.equal(r.inFlight, 320);
  assert.equal(r.status2xx, 2045);
  assert.equal(r.statusOther, 0);
  checkH2load(r, "h2", "in flight");
  // More 2xx than could have been in flight, or fewer than succeeded, is an error.
  assert.throws(() => checkH2load({ ...r, status2xx: 1957 + 321 }, "h2", "too many"), BenchError);
  assert.throws(() => checkH2load({ ...r, status2xx: 1956 }, "h2", "too few"), BenchError);
  const statuses = parseH2load(
    H2LOAD_IN_FLIGHT.replace("0 3xx, 0 4xx, 0 5xx", "1 3xx, 20 4xx, 300 5xx"),
  );
  assert.equal(statuses.statusOther, 321);
  assert.equal(statuses.statusLine, "status codes: 2045 2xx, 1 3xx, 20 4xx, 300 5xx");
  assert.throws(() => checkH2load(statuses, "h2", "statuses"), /20 4xx, 300 5xx/);
});

Deno.test("parseHolderLine() reads the holder's count, errors and first error", () => {
  assert.deepEqual(parseHolderLine("held 5000 errors 0"), { held: 5000, errors: 0 });
  assert.deepEqual(
    parseHolderLine("held 990 errors 10 first ConnectionRefused: Connection refused"),
    { held: 990, errors: 10, firstError: "ConnectionRefused: Connection refused" },
  );
  assert.throws(() => parseHolderLine("closed"), BenchError);
  assert.throws(() => parseHolderLine("held 5 errors"), BenchError);
});

Deno.test("parseCaddyVersion() reads Debian's and upstream's version lines", () => {
  assert.equal(parseCaddyVersion("2.6.2\n"), "2.6.2");
  assert.equal(
    parseCaddyVersion("v2.7.6 h1:w0NymbG2m9PcvKWsrXO6EEkY9Ru4FJK8uQbYcev1p3A=\n"),
    "2.7.6",
  );
  assert.throws(() => parseCaddyVersion("caddy: command not found"), BenchError);
});

Deno.test("parseIperf() reads the received sum and reports iperf3's own error", () => {
  const ok = JSON.stringify({
    end: { sum_received: { bits_per_second: 2.5e10, bytes: 9.3e9, seconds: 3 } },
  });
  assert.deepEqual(parseIperf(ok), { bitsPerSecond: 2.5e10, bytes: 9.3e9, seconds: 3 });
  assert.throws(
    () => parseIperf(JSON.stringify({ error: "the server is busy running a test" })),
    /busy/,
  );
  assert.throws(() => parseIperf("not json"), BenchError);
});

Deno.test("parseCurl() reads status, size and time", () => {
  assert.deepEqual(parseCurl("200 1073741824 1.234567\n"), {
    status: 200,
    bytes: 1073741824,
    seconds: 1.234567,
  });
  assert.throws(() => parseCurl("000 0"), BenchError);
});

Deno.test("parseDenoBench() reads averages and strips the repository root", () => {
  const json = JSON.stringify({
    benches: [{
      origin: "file:///repo/proxy/sniff/client_hello_bench.ts",
      group: "hello",
      name: "parseClientHello() curl-like hello, 517 B",
      results: [{ ok: { n: 275, avg: 189.2, p75: 180 } }],
    }],
  });
  assert.deepEqual(parseDenoBench(`Check file\n${json}`, "/repo"), [{
    file: "proxy/sniff/client_hello_bench.ts",
    group: "hello",
    name: "parseClientHello() curl-like hello, 517 B",
    avgNs: 189.2,
    p75Ns: 180,
    n: 275,
  }]);
});

Deno.test("summarize() gives the median and range, ignoring missing values", () => {
  assert.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(summarize([4, 1, NaN, 2, 3]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.equal(summarize([]).n, 0);
});

Deno.test("pairedRatios() divides round by round and skips rounds missing a side", () => {
  assert.deepEqual(pairedRatios([2, undefined, 9], [4, 5, 3]), [0.5, 3]);
});

Deno.test("statFields() survives a command name with spaces and parentheses", () => {
  const f = statFields("42 (a (b) c) S 1 42 42 0 -1 4194304 98 0 0 0 7 3 0 0 20 0");
  assert.equal(f[0], "S");
  assert.equal(f[1], "1");
  assert.equal(Number(f[11]) + Number(f[12]), 10);
});

Deno.test("hotFunctions() adds self time per function and leaves out idle samples", () => {
  const frame = (functionName: string) => ({ functionName, url: "", lineNumber: 0 });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame("(idle)") },
      { id: 2, callFrame: frame("op_write") },
      { id: 3, callFrame: frame("relay") },
    ],
    samples: [1, 2, 3, 2, 1],
    timeDeltas: [1000, 300, 100, 300, 5000],
  };
  const hot = hotFunctions(profile, "/repo", 5);
  assert.deepEqual(hot.map((h) => [h.name, h.selfMs, Math.round(h.share * 100)]), [
    ["op_write", 0.6, 86],
    ["relay", 0.1, 14],
  ]);
});
