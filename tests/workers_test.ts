/**
 * `workers: 2`: the supervisor starts two worker processes that share the listener's port
 * (SO_REUSEPORT), the kernel spreads connections over both, the admin listener sums their
 * connection counters, SIGHUP reaches both, a worker killed with SIGKILL is replaced, and SIGTERM stops
 * them all.
 */

import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { startTcpBackend } from "./_helpers/backends.ts";
import { echoThrough, writeAll } from "./_helpers/edgemux.ts";
import {
  echoForwardConfig,
  type EdgemuxCli,
  logLines,
  startEdgemuxCliOnFreePort,
  waitForLogLines,
} from "./_helpers/edgemux_cli.ts";
import { scrapeUntil } from "./_helpers/prometheus.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

/** Starts the CLI on a fixed port (workers cannot share port 0), retrying if it was taken. */
function startWorkers(dir: string, echoPort: number): Promise<{ cli: EdgemuxCli; port: number }> {
  return startEdgemuxCliOnFreePort(
    `${dir}/edgemux.yaml`,
    (tcpPort) =>
      echoForwardConfig(echoPort, {
        tcpPort,
        top: 'workers: 2\nadmin: { bind: "127.0.0.1:0" }\n',
        // One test holds 24 connections from 127.0.0.1, over the forward default of 10.
        echoKeys: "max_connections_per_client: none",
      }),
    { startTimeoutMs: 30_000 },
  );
}

/** The parent pid and state of a process, from /proc; null once it is gone. */
function procStat(pid: number): { ppid: number; state: string } | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(ppid), state };
  } catch {
    return null;
  }
}

/** Socket inodes of ESTABLISHED IPv4 TCP connections whose local port is `port`. */
function establishedOnPort(port: number): Set<string> {
  const out = new Set<string>();
  const lines = Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const localPort = parseInt(f[1].split(":")[1], 16);
    // Field 3 is the state (01 = ESTABLISHED), field 9 the inode.
    if (localPort === port && f[3] === "01") out.add(f[9]);
  }
  return out;
}

/** How many of `inodes` process `pid` holds open. */
function socketsHeldBy(pid: number, inodes: Set<string>): number {
  let n = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1])) n++;
    } catch {
      // Closed while we looked.
    }
  }
  return n;
}

/** Worker start lines: pid and index of each worker started so far. */
function workerStarts(cli: EdgemuxCli): { pid: number; worker: string }[] {
  return logLines(cli.output(), "edgemux started")
    .filter((f) => f.worker !== undefined && f.worker !== "-")
    .map((f) => ({ pid: Number(f.pid), worker: f.worker }));
}

interface StatusJson {
  pid: number;
  workers?: number[];
  activeConnections: number;
  reloads: { count: number };
}

async function status(cli: EdgemuxCli): Promise<StatusJson> {
  const res = await fetch(`${cli.adminUrl}/status.json`, { signal: AbortSignal.timeout(5000) });
  equal(res.status, 200);
  return await res.json() as StatusJson;
}

Deno.test("workers: 2 starts two workers that share the load, reload on SIGHUP, are replaced when killed, and stop on SIGTERM", async (t) => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-workers-");
  const { cli: c, port } = await startWorkers(dir.path, echo.port);
  await using cli = c;

  const supervisorLine = logLines(cli.output(), "edgemux started").find((f) =>
    f.pid === String(cli.pid)
  );
  const pids = (supervisorLine?.workers ?? "").split(",").map(Number);

  await t.step("the log names two worker pids, children of the supervisor", async () => {
    equal(pids.length, 2, cli.output());
    notEqual(pids[0], pids[1]);
    // Each process flushes its own log: a worker's line may land after the supervisor's.
    for (let i = 0; i < 50 && workerStarts(cli).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const starts = workerStarts(cli);
    deepEqual(starts.map((s) => s.pid).sort(), [...pids].sort(), cli.output());
    deepEqual(starts.map((s) => s.worker).sort(), ["0", "1"]);
    for (const pid of pids) equal(procStat(pid)?.ppid, cli.pid, `worker ${pid}'s parent`);
    // Each worker binds the port itself; the supervisor holds no listener.
    equal(logLines(cli.output(), "listening").length, 2, cli.output());
  });

  await t.step("connections are spread over both workers, and the admin sums them", async () => {
    const COUNT = 24;
    const conns: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < COUNT; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        // A byte echoed back means the worker holding it has connected it through.
        await writeAll(conn, new Uint8Array([i]));
        equal(await conn.read(new Uint8Array(1)), 1);
      }
      equal(echo.connections, COUNT);
      const accepted = establishedOnPort(port);
      // Both ends of a loopback connection have a line; only the accepted side has local
      // port `port`.
      equal(accepted.size, COUNT);
      const held = pids.map((pid) => socketsHeldBy(pid, accepted));
      equal(held[0] + held[1], COUNT, `held by the workers: ${held.join(" + ")}`);
      ok(held[0] > 0 && held[1] > 0, `one worker took every connection: ${held.join(" + ")}`);
      equal(socketsHeldBy(cli.pid, accepted), 0, "the supervisor holds connections");

      const s = await status(cli);
      deepEqual([...(s.workers ?? [])].sort(), [...pids].sort());
      equal(s.activeConnections, COUNT);
      const m = await scrapeUntil(
        `${cli.adminUrl}/metrics`,
        (m) => m.value("edgemux_connections_active", { listener: "tcp" }) === COUNT,
      );
      equal(m.value("edgemux_connections_active", { listener: "tcp" }), COUNT);
    } finally {
      for (const conn of conns) conn.close();
    }
    const m = await scrapeUntil(
      `${cli.adminUrl}/metrics`,
      (m) => m.sum("edgemux_connections_total", { listener: "tcp" }) === COUNT,
    );
    equal(m.sum("edgemux_connections_total", { listener: "tcp" }), COUNT);
    equal(m.value("edgemux_connections_active", { listener: "tcp" }), 0);
  });

  await t.step("SIGHUP to the supervisor reloads both workers", async () => {
    cli.signal("SIGHUP");
    // One line from each worker (with its time) and the supervisor's.
    await waitForLogLines(cli.output, "config reloaded", 1, (f) => f.workers === "2", 15_000);
    await waitForLogLines(cli.output, "config reloaded", 2, (f) => f.ms !== undefined, 5000);
    await new Promise((r) => setTimeout(r, 200));
    const reloaded = logLines(cli.output(), "config reloaded");
    equal(reloaded.filter((f) => f.ms !== undefined).length, 2, cli.output());
    equal(reloaded.filter((f) => f.workers === "2").length, 1, cli.output());
    // One reload of the service, counted once (not once per worker), as /status.json says.
    const m = await scrapeUntil(
      `${cli.adminUrl}/metrics`,
      (m) => m.value("edgemux_reloads_total", { result: "success" }) === 1,
    );
    equal(m.value("edgemux_reloads_total", { result: "success" }), 1);
    equal(m.value("edgemux_reloads_total", { result: "failure" }), 0);
    equal((await status(cli)).reloads.count, 1);
    equal(await echoThrough(port, "after the reload"), "after the reload");
  });

  await t.step("a worker killed with SIGKILL is replaced by a new one", async () => {
    const [victim, survivor] = pids;
    Deno.kill(victim, "SIGKILL");
    await cli.waitForOutput(
      new RegExp(
        `level=error msg="worker exited; starting a new one" worker=\\d pid=${victim} .*signal=SIGKILL`,
      ),
      10_000,
    );
    const deadline = performance.now() + 15_000;
    let replacement: { pid: number; worker: string } | undefined;
    while (replacement === undefined && performance.now() < deadline) {
      replacement = workerStarts(cli).find((s) => !pids.includes(s.pid));
      if (replacement === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    ok(replacement, `no new worker started:\n${cli.output()}`);
    equal(procStat(replacement.pid)?.ppid, cli.pid);
    const s = await status(cli);
    deepEqual([...(s.workers ?? [])].sort(), [replacement.pid, survivor].sort());
    pids.splice(0, 2, replacement.pid, survivor);
    // Both serve: enough connections that each worker almost surely gets some.
    for (let i = 0; i < 10; i++) equal(await echoThrough(port, `round ${i}`), `round ${i}`);
  });

  await t.step("SIGTERM stops every worker, and the supervisor exits 0", async () => {
    cli.signal("SIGTERM");
    const exit = await cli.exited;
    equal(exit.code, 0, cli.output());
    equal(exit.signal, null);
    for (const pid of pids) {
      const stat = procStat(pid);
      ok(stat === null || stat.state === "Z", `worker ${pid} still runs: ${stat?.state}`);
    }
    // The supervisor and both workers (each flushes its log before it exits).
    equal(logLines(cli.output(), "stopped").length, 3, cli.output());
  });
});
