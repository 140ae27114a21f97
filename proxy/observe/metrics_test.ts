import { deepEqual, equal, ok } from "node:assert/strict";
import {
  combineWorkers,
  DURATION_BUCKETS,
  durationBuckets,
  type MetricsSnapshot,
  Registry,
  renderPrometheus,
} from "./metrics.ts";

/** A registry with one metric of each aggregation, as a worker or supervisor would have. */
function processRegistry(values: {
  requests: number;
  active: number;
  up: number;
  notAfter: number;
  reloads: number;
  rss: number;
  seconds?: number[];
  buckets?: number[];
}): MetricsSnapshot {
  const r = new Registry();
  r.counter("requests_total", "Requests.", ["route"]).inc(["a"], values.requests);
  r.gauge("active", "Open now.", ["listener"], { across: "sum" }).set(["l"], values.active);
  r.gauge("server_up", "Up.", ["server"], { across: "min" }).set(["s1"], values.up);
  r.gauge("not_after", "Expiry.", ["file"], { across: "min" }).set(["c.pem"], values.notAfter);
  r.gauge("failures", "Failed attempts.", ["name"], { across: "max" }).set(["n"], values.up * 3);
  r.counter("reloads_total", "Reloads.", ["result"], { across: "supervisor" })
    .inc(["success"], values.reloads);
  r.gauge("rss_bytes", "Memory.", [], { across: "worker" }).set([], values.rss);
  const h = r.histogram("seconds", "Durations.", ["route"], values.buckets ?? [1, 10]);
  for (const s of values.seconds ?? []) h.observe(["a"], s);
  return JSON.parse(JSON.stringify(r.snapshot()));
}

function seriesOf(snap: MetricsSnapshot, name: string) {
  return snap.find((f) => f.name === name)?.series ?? [];
}

Deno.test("combineWorkers() adds counters and counting gauges, and takes the minimum or maximum of shared state", () => {
  const w0 = processRegistry({
    requests: 3,
    active: 2,
    up: 1,
    notAfter: 2000,
    reloads: 1,
    rss: 10,
  });
  const w1 = processRegistry({
    requests: 4,
    active: 5,
    up: 0,
    notAfter: 1000,
    reloads: 1,
    rss: 20,
  });
  const all = combineWorkers([], [{ worker: 0, snapshot: w0 }, { worker: 1, snapshot: w1 }]);
  deepEqual(seriesOf(all, "requests_total"), [{ labels: ["a"], values: [7] }]);
  deepEqual(seriesOf(all, "active"), [{ labels: ["l"], values: [7] }]);
  // Up only when every worker has it up; the certificate that expires first.
  deepEqual(seriesOf(all, "server_up"), [{ labels: ["s1"], values: [0] }]);
  deepEqual(seriesOf(all, "not_after"), [{ labels: ["c.pem"], values: [1000] }]);
  // The latest word on shared state: the worker that has seen the most failures.
  deepEqual(seriesOf(all, "failures"), [{ labels: ["n"], values: [3] }]);
});

Deno.test("combineWorkers() keeps the supervisor's own service metrics and labels per-process ones", () => {
  const sup = new Registry();
  sup.counter("reloads_total", "Reloads.", ["result"], { across: "supervisor" }).inc(["success"]);
  sup.gauge("rss_bytes", "Memory.", [], { across: "worker" }).set([], 5);
  const w0 = processRegistry({ requests: 1, active: 0, up: 1, notAfter: 1, reloads: 1, rss: 10 });
  const w1 = processRegistry({ requests: 1, active: 0, up: 1, notAfter: 1, reloads: 1, rss: 20 });
  const all = combineWorkers(sup.snapshot(), [
    { worker: 0, snapshot: w0 },
    { worker: 1, snapshot: w1 },
  ]);
  // One SIGHUP reloaded both workers: the service reloaded once.
  deepEqual(seriesOf(all, "reloads_total"), [{ labels: ["success"], values: [1] }]);
  const rss = all.find((f) => f.name === "rss_bytes")!;
  deepEqual(rss.labelNames, ["worker"]);
  deepEqual(rss.series, [
    { labels: ["supervisor"], values: [5] },
    { labels: ["0"], values: [10] },
    { labels: ["1"], values: [20] },
  ]);
  ok(renderPrometheus(all).includes('rss_bytes{worker="1"} 20\n'));
});

Deno.test("combineWorkers() takes a supervisor-only metric from the first worker when the supervisor has none", () => {
  const w0 = processRegistry({ requests: 0, active: 0, up: 1, notAfter: 1, reloads: 2, rss: 1 });
  const w1 = processRegistry({ requests: 0, active: 0, up: 1, notAfter: 1, reloads: 3, rss: 1 });
  const all = combineWorkers([], [{ worker: 0, snapshot: w0 }, { worker: 1, snapshot: w1 }]);
  deepEqual(seriesOf(all, "reloads_total"), [{ labels: ["success"], values: [2] }]);
});

Deno.test("combineWorkers() adds histograms on the bounds every worker has", () => {
  const w0 = processRegistry({
    requests: 0,
    active: 0,
    up: 1,
    notAfter: 1,
    reloads: 0,
    rss: 1,
    buckets: [1, 10, 100],
    seconds: [0.5, 5, 50],
  });
  const w1 = processRegistry({
    requests: 0,
    active: 0,
    up: 1,
    notAfter: 1,
    reloads: 0,
    rss: 1,
    buckets: [1, 10],
    seconds: [0.5, 50],
  });
  const all = combineWorkers([], [{ worker: 0, snapshot: w0 }, { worker: 1, snapshot: w1 }]);
  const h = all.find((f) => f.name === "seconds")!;
  deepEqual(h.buckets, [1, 10]);
  // Cumulative counts at 1 and 10, then the sum and the count of all five observations.
  deepEqual(h.series, [{ labels: ["a"], values: [2, 3, 106, 5] }]);
});

Deno.test("init() creates a series at 0 without changing one that exists", () => {
  const r = new Registry();
  const c = r.counter("failures_total", "Failures.", ["cause"]);
  c.inc(["b"], 2);
  c.init(["a"]);
  c.init(["b"]);
  r.histogram("d_seconds", "D.", ["x"], [1]).init(["y"]);
  const snap = r.snapshot();
  deepEqual(seriesOf(snap, "failures_total"), [
    { labels: ["b"], values: [2] },
    { labels: ["a"], values: [0] },
  ]);
  deepEqual(seriesOf(snap, "d_seconds"), [{ labels: ["y"], values: [0, 0, 0] }]);
});

Deno.test("durationBuckets() reaches the timeout it is given, and always starts with the standard ladder", () => {
  deepEqual(durationBuckets(0), DURATION_BUCKETS);
  deepEqual(durationBuckets(60), DURATION_BUCKETS);
  for (const seconds of [61, 90, 300, 3600, 3601, 86400, 7 * 86400]) {
    const b = durationBuckets(seconds);
    ok(b[b.length - 1] >= seconds, `${seconds}: ${b.join(",")}`);
    ok(b[b.length - 2] < seconds, `${seconds}: one bucket too many`);
    deepEqual(b.slice(0, DURATION_BUCKETS.length), DURATION_BUCKETS);
  }
  equal(durationBuckets(3600).at(-1), 3600);
  // Past the longest ladder: +Inf takes the rest.
  equal(durationBuckets(30 * 86400).at(-1), 7 * 86400);
});
