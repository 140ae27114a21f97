import assert from "node:assert/strict";
import { Registry, sumSnapshots } from "./metrics.ts";

Deno.test("sumSnapshots() adds workers' counters and gauges, but takes the largest of a merge: max gauge", () => {
  const worker = (active: number, expiry: number) => {
    const r = new Registry();
    r.counter("c_total", "c", ["l"]).inc(["a"], active);
    r.gauge("active", "a", ["l"]).set(["a"], active);
    r.gauge("expiry_timestamp_seconds", "e", ["name"], { merge: "max" }).set(["x"], expiry);
    return r.snapshot();
  };
  const sum = sumSnapshots([worker(2, 1000), worker(3, 1000), worker(0, 900)]);
  const value = (name: string) => sum.find((f) => f.name === name)!.series[0].values[0];
  assert.equal(value("c_total"), 5);
  assert.equal(value("active"), 5);
  // Three workers knowing the same expiry do not make it three times later.
  assert.equal(value("expiry_timestamp_seconds"), 1000);
  // Families without the option snapshot exactly as before.
  assert.equal("merge" in sum.find((f) => f.name === "active")!, false);
});
