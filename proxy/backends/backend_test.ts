/**
 * Unit tests of Backend.pick() and the per-server state that feeds it: the four balancing
 * algorithms, backup servers, max_connections, passive health, health-check verdicts and
 * reloads. No sockets: servers are only addresses here, and time is faked where it matters.
 * Long because it covers every rule of one module, backends/backend.ts, one small test each.
 */

import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import fc from "fast-check";
import type { BackendConfig, ServerConfig } from "../../config/types.ts";
import { parseBackendConfig } from "../_testing/backend_config.ts";
import { Backend, type NoServer, type ServerState } from "./backend.ts";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** The config of backend `b` from the YAML of its keys (see parseBackendConfig). */
function backendConfig(body: string): BackendConfig {
  return parseBackendConfig(body, "backend_test.yaml");
}

/** A Backend for `b` from the YAML of its keys. */
function backendOf(body: string): Backend {
  return new Backend(backendConfig(body));
}

/** The keys of a backend whose servers 127.0.0.1:1, :2, ... have these `weights`. */
function weighted(weights: number[], balance?: string): string {
  const servers = weights.map((w, i) => `  - { address: "127.0.0.1:${i + 1}", weight: ${w} }`);
  return [...(balance ? [`balance: ${balance}`] : []), "servers:", ...servers].join("\n");
}

/** Fails the health check of the servers of `backend` on `ports`, as a checker would. */
function takeDown(backend: Backend, ...ports: number[]): void {
  for (const port of ports) backend.setChecked(server(backend, port), false, "test");
}

/** Picks `n` times, failing the test if any pick finds no server. */
function pickMany(backend: Backend, n: number, exclude?: ReadonlySet<ServerState>): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(label(backend.pick(exclude)));
  return out;
}

/** The server's port as the short name used in assertions ("1", "2"…), or the NoServer word. */
function label(picked: ServerState | NoServer): string {
  if (typeof picked === "string") throw new Error(`pick() found no server: ${picked}`);
  return String(picked.config.address.port);
}

function count(picks: string[], which: string): number {
  return picks.filter((p) => p === which).length;
}

/** How many picks each server got, by its short name; servers never picked are left out. */
function tally(picks: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of picks) counts[p] = (counts[p] ?? 0) + 1;
  return counts;
}

/** The longest run of consecutive equal picks of `which`. */
function longestRun(picks: string[], which: string): number {
  let best = 0;
  let run = 0;
  for (const p of picks) {
    run = p === which ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best;
}

/** The server of `backend` on `port` (servers in these tests are 127.0.0.1:PORT). */
function server(backend: Backend, port: number): ServerState {
  const s = backend.servers.find((x) => x.config.address.port === port);
  if (s === undefined) throw new Error(`no server on port ${port}`);
  return s;
}

/**
 * Replaces the clock with one the test moves by hand, for the duration of `body`. Backend reads
 * the time through Date.now() (ServerState.passiveUntil is a Date.now() time); performance.now()
 * is stopped as well, so the tests hold whichever of the two it uses.
 */
function withFakeClock(body: (clock: { now: number }) => void): void {
  const realDate = Date.now;
  const realPerf = performance.now;
  const clock = { now: 1_000_000 };
  Date.now = () => clock.now;
  performance.now = () => clock.now;
  try {
    body(clock);
  } finally {
    Date.now = realDate;
    performance.now = realPerf;
  }
}

/** The time as Backend sees it, for ServerState.up(). */
function backendNow(): number {
  return Date.now();
}

/** A small seeded generator (mulberry32), so the random algorithm's tests are repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `body` with Math.random() replaced by a seeded generator. */
function withSeededRandom<T>(seed: number, body: () => T): T {
  const real = Math.random;
  Math.random = seeded(seed);
  try {
    return body();
  } finally {
    Math.random = real;
  }
}

// ---------------------------------------------------------------------------------------------
// round_robin
// ---------------------------------------------------------------------------------------------

Deno.test("pick() with round_robin and weights 1:3 gives exactly 100 and 300 of 400 picks", () => {
  const backend = backendOf(weighted([1, 3], "round_robin"));
  const picks = pickMany(backend, 400);
  deepEqual(tally(picks), { 1: 100, 2: 300 });
});

Deno.test("pick() with round_robin mixes a 1:3 weighting evenly: one light pick in every four", () => {
  const backend = backendOf(weighted([1, 3], "round_robin"));
  const picks = pickMany(backend, 400);
  // Smooth weighted round robin never sends the light server two in a row, nor the heavy one
  // more than its weight in a row.
  equal(longestRun(picks, "1"), 1);
  ok(longestRun(picks, "2") <= 3, `a run of ${longestRun(picks, "2")} picks of the heavy server`);
  for (let i = 0; i + 4 <= picks.length; i += 4) {
    equal(count(picks.slice(i, i + 4), "1"), 1, `window ${i}: ${picks.slice(i, i + 4)}`);
  }
});

Deno.test("pick() with round_robin and equal weights alternates between the servers", () => {
  const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  const picks = pickMany(backend, 30);
  deepEqual(tally(picks), { 1: 10, 2: 10, 3: 10 });
  for (let i = 1; i < picks.length; i++) notEqual(picks[i], picks[i - 1]);
});

Deno.test("pick() with round_robin shares picks among the servers left when one goes down", () => {
  const backend = backendOf(weighted([1, 1, 2]));
  takeDown(backend, 3);
  const picks = pickMany(backend, 40);
  deepEqual(tally(picks), { 1: 20, 2: 20 });
});

// ---------------------------------------------------------------------------------------------
// least_conn
// ---------------------------------------------------------------------------------------------

Deno.test("pick() with least_conn picks the server with the fewest open connections", () => {
  const backend = backendOf(`
balance: least_conn
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  server(backend, 1).active = 4;
  server(backend, 2).active = 1;
  server(backend, 3).active = 2;
  deepEqual(pickMany(backend, 10), Array(10).fill("2"));
});

Deno.test("pick() with least_conn fills servers up as their counts change", () => {
  const backend = backendOf(`
balance: least_conn
servers: ["127.0.0.1:1", "127.0.0.1:2"]
`);
  server(backend, 1).active = 3;
  // As the caller does: each pick opens a connection on the chosen server.
  const picks: string[] = [];
  for (let i = 0; i < 3; i++) {
    const s = backend.pick();
    if (typeof s === "string") throw new Error(s);
    s.active++;
    picks.push(label(s));
  }
  deepEqual(picks, ["2", "2", "2"], "the idle server catches up with the busy one first");
  equal(server(backend, 2).active, 3);
});

Deno.test("pick() with least_conn spreads ties over all the tied servers", () => {
  const backend = backendOf(`
balance: least_conn
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  const picks = pickMany(backend, 30);
  deepEqual(tally(picks), { 1: 10, 2: 10, 3: 10 }, `picks: ${picks}`);
  // Two idle servers and one busy: the busy one is never picked, the others share.
  server(backend, 3).active = 1;
  const more = pickMany(backend, 20);
  deepEqual(tally(more), { 1: 10, 2: 10 });
});

Deno.test("pick() with least_conn compares connections per unit of weight", () => {
  const backend = backendOf(weighted([1, 4], "least_conn"));
  // 2 of weight 1 is busier than 6 of weight 4 (2 > 1.5).
  server(backend, 1).active = 2;
  server(backend, 2).active = 6;
  equal(label(backend.pick()), "2");
  // 1 of weight 1 is less busy than 6 of weight 4 (1 < 1.5).
  server(backend, 1).active = 1;
  equal(label(backend.pick()), "1");
});

// ---------------------------------------------------------------------------------------------
// random (power of two choices)
// ---------------------------------------------------------------------------------------------

Deno.test("pick() with random prefers the less busy of two draws", () => {
  const backend = backendOf(`
balance: random
servers: ["127.0.0.1:1", "127.0.0.1:2"]
`);
  server(backend, 1).active = 5;
  const picks = withSeededRandom(1, () => pickMany(backend, 1000));
  // The busy server wins only when both draws land on it (1 in 2 × (1 in 2)^5 redraws).
  ok(count(picks, "2") >= 950, `the idle server got ${count(picks, "2")} of 1000 picks`);
});

Deno.test("pick() with random follows the weights when the servers are equally busy", () => {
  const backend = backendOf(weighted([1, 3], "random"));
  for (const seed of [1, 2, 3]) {
    const picks = withSeededRandom(seed, () => pickMany(backend, 4000));
    const light = count(picks, "1");
    // Expected 1000; the standard deviation is about 27, so ±150 is over five of them.
    ok(Math.abs(light - 1000) <= 150, `seed ${seed}: the weight-1 server got ${light} of 4000`);
  }
});

Deno.test("pick() with random compares busyness per unit of weight", () => {
  const backend = backendOf(weighted([1, 4], "random"));
  // 2 per weight on the light server, 1.5 per weight on the heavy one: the heavy one wins
  // every comparison, so the light one is picked only when both draws land on it.
  server(backend, 1).active = 2;
  server(backend, 2).active = 6;
  const picks = withSeededRandom(7, () => pickMany(backend, 2000));
  ok(count(picks, "1") <= 40, `the busier-per-weight server got ${count(picks, "1")} of 2000`);
});

Deno.test("pick() with random still spreads load on the real Math.random (loose bounds)", () => {
  const backend = backendOf(`
balance: random
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  const picks = pickMany(backend, 3000);
  for (const p of ["1", "2", "3"]) {
    const n = count(picks, p);
    ok(n > 800 && n < 1200, `server ${p} got ${n} of 3000 picks`);
  }
});

// ---------------------------------------------------------------------------------------------
// first
// ---------------------------------------------------------------------------------------------

Deno.test("pick() with first keeps to the first server while it is available", () => {
  const backend = backendOf(`
balance: first
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  deepEqual(pickMany(backend, 5), ["1", "1", "1", "1", "1"]);
});

Deno.test("pick() with first fails over in list order and returns when servers come back", () => {
  const backend = backendOf(`
balance: first
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
  takeDown(backend, 1);
  equal(label(backend.pick()), "2");
  takeDown(backend, 2);
  equal(label(backend.pick()), "3");
  backend.setChecked(server(backend, 1), true, "");
  equal(label(backend.pick()), "1");
  equal(label(backend.pick(new Set([server(backend, 1)]))), "3", "2 is still down");
});

Deno.test("pick() with first moves on to the next server when the first is full", () => {
  const backend = backendOf(`
balance: first
servers:
  - { address: "127.0.0.1:1", max_connections: 2 }
  - "127.0.0.1:2"
`);
  server(backend, 1).active = 2;
  equal(label(backend.pick()), "2");
  server(backend, 1).active = 1;
  equal(label(backend.pick()), "1");
});

// ---------------------------------------------------------------------------------------------
// backup servers
// ---------------------------------------------------------------------------------------------

const WITH_BACKUPS = `
servers:
  - "127.0.0.1:1"
  - "127.0.0.1:2"
  - { address: "127.0.0.1:3", backup: true }
  - { address: "127.0.0.1:4", backup: true }
`;

Deno.test("pick() never uses a backup server while a non-backup server is up", () => {
  const backend = backendOf(WITH_BACKUPS);
  const picks = pickMany(backend, 40);
  equal(count(picks, "3") + count(picks, "4"), 0);
  takeDown(backend, 1);
  const fewer = pickMany(backend, 40);
  deepEqual(new Set(fewer), new Set(["2"]), "one primary left: it takes everything");
});

Deno.test("pick() uses the backup servers, balanced, when every non-backup server is down", () => {
  const backend = backendOf(WITH_BACKUPS);
  takeDown(backend, 1, 2);
  const picks = pickMany(backend, 40);
  deepEqual(tally(picks), { 3: 20, 4: 20 });
});

Deno.test("pick() drops the backups again as soon as a non-backup server comes back", () => {
  const backend = backendOf(WITH_BACKUPS);
  takeDown(backend, 1, 2);
  ok(["3", "4"].includes(label(backend.pick())));
  backend.setChecked(server(backend, 2), true, "");
  deepEqual(new Set(pickMany(backend, 20)), new Set(["2"]));
});

Deno.test("pick() falls back to a backup when the non-backup servers were all tried already", () => {
  const backend = backendOf(WITH_BACKUPS);
  const tried = new Set([server(backend, 1), server(backend, 2)]);
  ok(["3", "4"].includes(label(backend.pick(tried))));
});

Deno.test("pick() does not spill onto backups when the non-backup servers are up but full", () => {
  const backend = backendOf(`
servers:
  - { address: "127.0.0.1:1", max_connections: 1 }
  - { address: "127.0.0.1:2", backup: true }
`);
  server(backend, 1).active = 1;
  equal(backend.pick(), "all-full");
});

// ---------------------------------------------------------------------------------------------
// max_connections, all-down, exclude
// ---------------------------------------------------------------------------------------------

Deno.test("pick() skips a server at max_connections and says all-full when every server is", () => {
  const backend = backendOf(`
servers:
  - { address: "127.0.0.1:1", max_connections: 1 }
  - { address: "127.0.0.1:2", max_connections: 2 }
`);
  server(backend, 1).active = 1;
  deepEqual(new Set(pickMany(backend, 6)), new Set(["2"]));
  server(backend, 2).active = 2;
  equal(backend.pick(), "all-full");
  server(backend, 2).active = 1;
  equal(label(backend.pick()), "2");
});

Deno.test("pick() says all-full, not all-down, when the only server up is full", () => {
  const backend = backendOf(`
servers:
  - { address: "127.0.0.1:1", max_connections: 1 }
  - "127.0.0.1:2"
`);
  server(backend, 1).active = 1;
  takeDown(backend, 2);
  equal(backend.pick(), "all-full");
});

Deno.test("pick() says all-down when every server is down", () => {
  const backend = backendOf(`
servers: ["127.0.0.1:1", { address: "127.0.0.1:2", backup: true }]
`);
  takeDown(backend, 1, 2);
  equal(backend.pick(), "all-down");
});

Deno.test("pick() never returns an excluded server, and says all-down when all are excluded", () => {
  for (const balance of ["round_robin", "least_conn", "random", "first"]) {
    const backend = backendOf(`
balance: ${balance}
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
`);
    const tried = new Set([server(backend, 1), server(backend, 3)]);
    deepEqual(new Set(pickMany(backend, 20, tried)), new Set(["2"]), balance);
    tried.add(server(backend, 2));
    equal(backend.pick(tried), "all-down", balance);
  }
});

// ---------------------------------------------------------------------------------------------
// Passive health
// ---------------------------------------------------------------------------------------------

Deno.test("passive health takes a server down after `failures` connect failures, for `backoff`", () => {
  withFakeClock((clock) => {
    const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 3, backoff: 2s }
`);
    const s1 = server(backend, 1);
    backend.connectFailed(s1, "connection refused");
    backend.connectFailed(s1, "connection refused");
    ok(s1.up(clock.now), "two failures of three: still up");
    backend.connectFailed(s1, "connection refused");
    equal(s1.up(clock.now), false);
    equal(s1.passiveUntil, clock.now + 2000);
    ok(s1.reason?.includes("connection refused"), `reason: ${s1.reason}`);
    deepEqual(new Set(pickMany(backend, 10)), new Set(["2"]));
    clock.now += 1999;
    equal(s1.up(clock.now), false, "1999 ms into a 2 s backoff");
    clock.now += 1;
    ok(s1.up(clock.now), "the backoff is over");
    ok(pickMany(backend, 10).includes("1"));
  });
});

Deno.test("passive health counts only consecutive failures: a success resets the count", () => {
  withFakeClock((clock) => {
    const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 2, backoff: 1s }
`);
    const s1 = server(backend, 1);
    for (let i = 0; i < 5; i++) {
      backend.connectFailed(s1, "connection refused");
      backend.connectSucceeded(s1);
    }
    ok(s1.up(clock.now), "failures always separated by successes never add up");
    equal(s1.failures, 0);
    backend.connectFailed(s1, "connection refused");
    backend.connectFailed(s1, "connection refused");
    equal(s1.up(clock.now), false);
  });
});

Deno.test("passive health counts 5xx responses only with on_5xx, and a good response resets", () => {
  withFakeClock((clock) => {
    const on = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 2, backoff: 1s, on_5xx: true }
`);
    const s1 = server(on, 1);
    on.responded(s1, 503);
    on.responded(s1, 200);
    on.responded(s1, 500);
    ok(s1.up(clock.now), "a 200 between two 5xx resets the count");
    on.responded(s1, 404);
    on.responded(s1, 599);
    ok(s1.up(clock.now), "4xx is not a server failure, and resets the count");
    on.responded(s1, 502);
    equal(s1.up(clock.now), false, "599 then 502: two 5xx in a row");
    ok(s1.reason?.includes("HTTP 502"), `reason: ${s1.reason}`);

    const off = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 2, backoff: 1s }
`);
    const t1 = server(off, 1);
    for (let i = 0; i < 10; i++) off.responded(t1, 500);
    ok(t1.up(clock.now), "without on_5xx a 5xx says nothing about the server");
  });
});

Deno.test("passive health with failures: 0 never takes a server down", () => {
  withFakeClock((clock) => {
    const backend = backendOf(`
servers: ["127.0.0.1:1"]
passive_health: { failures: 0, on_5xx: true }
`);
    const s1 = server(backend, 1);
    for (let i = 0; i < 50; i++) {
      backend.connectFailed(s1, "connection refused");
      backend.responded(s1, 500);
    }
    ok(s1.up(clock.now));
  });
});

Deno.test("passive health uses the real clock: a 100 ms backoff ends by itself", async () => {
  const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 1, backoff: 100ms }
`);
  const s1 = server(backend, 1);
  backend.connectFailed(s1, "connection refused");
  equal(s1.up(backendNow()), false);
  await new Promise((r) => setTimeout(r, 150));
  ok(s1.up(backendNow()));
  ok(pickMany(backend, 4).includes("1"));
});

// ---------------------------------------------------------------------------------------------
// Active health-check verdicts
// ---------------------------------------------------------------------------------------------

Deno.test("setChecked() takes a server out of rotation and brings it back", () => {
  const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
`);
  const s1 = server(backend, 1);
  backend.setChecked(s1, false, "health check failed 3 times: connection refused");
  equal(s1.checkedDown, true);
  equal(s1.reason, "health check failed 3 times: connection refused");
  equal(s1.up(backendNow()), false);
  deepEqual(new Set(pickMany(backend, 10)), new Set(["2"]));
  backend.setChecked(s1, true, "");
  equal(s1.checkedDown, false);
  ok(s1.up(backendNow()));
  deepEqual(new Set(pickMany(backend, 10)), new Set(["1", "2"]));
});

Deno.test("setChecked(up) also ends a passive backoff", () => {
  withFakeClock((clock) => {
    const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 1, backoff: 1m }
`);
    const s1 = server(backend, 1);
    backend.connectFailed(s1, "connection refused");
    backend.setChecked(s1, false, "health check failed");
    equal(s1.up(clock.now), false);
    backend.setChecked(s1, true, "");
    ok(s1.up(clock.now), "a passing health check is better news than an old failure");
    equal(s1.passiveUntil, 0);
  });
});

Deno.test("a server down by a health check stays down whatever passive health says", () => {
  withFakeClock((clock) => {
    const backend = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2"]
passive_health: { failures: 1, backoff: 100ms }
`);
    const s1 = server(backend, 1);
    backend.setChecked(s1, false, "health check failed");
    backend.connectSucceeded(s1);
    clock.now += 60_000;
    equal(s1.up(clock.now), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------------------------

Deno.test("a reload keeps what is known about each server, matched by address", () => {
  withFakeClock((clock) => {
    const before = backendOf(`
servers: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
passive_health: { failures: 2, backoff: 10s }
`);
    before.setChecked(server(before, 1), false, "health check failed: refused");
    before.connectFailed(server(before, 2), "connection refused");
    before.connectFailed(server(before, 2), "connection refused");
    before.connectFailed(server(before, 3), "connection refused");
    // The new config reorders the servers, drops nothing old but adds a new one.
    const after = new Backend(
      backendConfig(`
servers: ["127.0.0.1:4", "127.0.0.1:3", "127.0.0.1:2", "127.0.0.1:1"]
passive_health: { failures: 2, backoff: 10s }
`),
      before,
    );
    const a1 = server(after, 1);
    const a2 = server(after, 2);
    const a3 = server(after, 3);
    const a4 = server(after, 4);
    equal(a1.checkedDown, true);
    equal(a1.reason, "health check failed: refused");
    equal(a2.passiveUntil, clock.now + 10_000);
    equal(a2.up(clock.now), false);
    equal(a3.failures, 1, "one failure so far: the next one trips it");
    after.connectFailed(a3, "connection refused");
    equal(a3.up(clock.now), false);
    equal(a4.up(clock.now), true, "a new server starts up");
    equal(a4.failures, 0);
    // The same state object carries on, so connections opened before the reload still count
    // against the server, and decrement the count the new Backend sees when they end.
    ok(before.servers.includes(a1));
  });
});

Deno.test("a reload drops the state of a server whose address left the config", () => {
  const before = backendOf(`servers: ["127.0.0.1:1", "127.0.0.1:2"]`);
  before.setChecked(server(before, 2), false, "down");
  const middle = new Backend(backendConfig(`servers: ["127.0.0.1:1"]`), before);
  const after = new Backend(backendConfig(`servers: ["127.0.0.1:1", "127.0.0.1:2"]`), middle);
  ok(server(after, 2).up(backendNow()), "2 came back as a new server");
});

Deno.test("a reload keeps each server's open-connection count, so max_connections still holds", () => {
  // Connections opened before a reload stay open on the server after it, and their release()
  // runs against the old ServerState. If the new state starts at zero, a server at its
  // max_connections is offered new connections right after a reload (and least_conn sees an
  // idle server where a busy one is).
  const config = backendConfig(`
servers:
  - { address: "127.0.0.1:1", max_connections: 1 }
`);
  const before = new Backend(config);
  const s = before.pick();
  if (typeof s === "string") throw new Error(s);
  s.active++; // one long connection is open on the server
  equal(before.pick(), "all-full");
  const after = new Backend(config, before);
  equal(
    after.pick(),
    "all-full",
    "the one connection allowed is still open on 127.0.0.1:1, yet the reloaded backend offers it",
  );
});

// ---------------------------------------------------------------------------------------------
// Property: pick() returns only servers it may return
// ---------------------------------------------------------------------------------------------

interface ServerCase {
  weight: number;
  backup: boolean;
  state: "up" | "checked-down" | "passive-down" | "full" | "below-max";
  excluded: boolean;
}

const serverCaseArb: fc.Arbitrary<ServerCase> = fc.record({
  weight: fc.integer({ min: 1, max: 10 }),
  backup: fc.boolean(),
  state: fc.constantFrom("up", "checked-down", "passive-down", "full", "below-max"),
  excluded: fc.boolean(),
});

const BASE = backendConfig(`servers: ["127.0.0.1:1"]`);

Deno.test("pick() never returns an excluded, down or full server, nor a backup while a primary is up", () => {
  fc.assert(
    fc.property(
      fc.array(serverCaseArb, { minLength: 1, maxLength: 6 }),
      fc.constantFrom("round_robin", "least_conn", "random", "first"),
      fc.integer({ min: 1, max: 12 }),
      (cases, balance, picks) => {
        const servers: ServerConfig[] = cases.map((c, i) => ({
          address: { host: "127.0.0.1", port: i + 1, kind: "ipv4" },
          label: `127.0.0.1:${i + 1}`,
          weight: c.weight,
          backup: c.backup,
          maxConnections: c.state === "full" || c.state === "below-max" ? 3 : null,
        }));
        const backend = new Backend({ ...BASE, balance, servers });
        const exclude = new Set<ServerState>();
        cases.forEach((c, i) => {
          const s = backend.servers[i];
          if (c.state === "checked-down") s.checkedDown = true;
          if (c.state === "passive-down") s.passiveUntil = Number.MAX_SAFE_INTEGER;
          if (c.state === "full") s.active = 3;
          if (c.state === "below-max") s.active = 2;
          if (c.excluded) exclude.add(s);
        });
        // The oracle: up and not excluded, primaries first; then any below its cap.
        const isUp = (c: ServerCase) => c.state !== "checked-down" && c.state !== "passive-down";
        const usable = (backup: boolean) =>
          cases.filter((c) => c.backup === backup && !c.excluded && isUp(c));
        const candidates = usable(false).length > 0 ? usable(false) : usable(true);
        const open = candidates.filter((c) => c.state !== "full");
        const expected = candidates.length === 0
          ? "all-down"
          : open.length === 0
          ? "all-full"
          : null;
        for (let i = 0; i < picks; i++) {
          const got = backend.pick(exclude);
          if (typeof got === "string") {
            equal(got, expected);
            continue;
          }
          equal(expected, null, `picked ${got.config.label} where ${expected} was expected`);
          const c = cases[backend.servers.indexOf(got)];
          ok(!c.excluded, "picked an excluded server");
          ok(isUp(c), "picked a down server");
          ok(c.state !== "full", "picked a full server");
          ok(open.includes(c), "picked a server outside the usable group");
          if (c.backup) equal(usable(false).length, 0, "picked a backup while a primary is up");
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("max_connections_per_client: one client at the cap is refused, others and later ones are not", () => {
  const backend = backendOf(`servers: ["127.0.0.1:1"]\nmax_connections_per_client: 2`);
  const a1 = backend.admitClient("192.0.2.1");
  const a2 = backend.admitClient("192.0.2.1");
  ok(a1 !== null && a2 !== null);
  equal(backend.admitClient("192.0.2.1"), null);
  equal(backend.clientConnections("192.0.2.1"), 2);
  ok(backend.admitClient("192.0.2.2") !== null, "another client is not refused");
  a1();
  a1(); // a second release changes nothing
  equal(backend.clientConnections("192.0.2.1"), 1);
  ok(backend.admitClient("192.0.2.1") !== null);
  // The counts outlive a reload, like the connections they describe.
  const reloaded = new Backend(
    backendConfig(`servers: ["127.0.0.1:1"]\nmax_connections_per_client: 2`),
    backend,
  );
  equal(reloaded.admitClient("192.0.2.1"), null);
  a2();
  ok(reloaded.admitClient("192.0.2.1") !== null);
});

Deno.test("max_connections_per_client defaults to 10 on a forward backend", () => {
  const backend = backendOf(`servers: ["127.0.0.1:1"]`);
  const held = Array.from({ length: 10 }, () => backend.admitClient("192.0.2.1"));
  ok(held.every((h) => h !== null));
  equal(backend.admitClient("192.0.2.1"), null);
});
