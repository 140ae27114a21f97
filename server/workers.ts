/**
 * Using every core: with `workers: N`, a supervisor process starts N workers, each a whole
 * edgemux on the same listeners (SO_REUSEPORT, so the kernel spreads connections over them).
 * The supervisor serves the admin listener, combines the workers' metrics (each metric as its
 * meaning says: counters add, the service's build, start and reloads are the supervisor's own,
 * see proxy/observe/metrics.ts), passes SIGHUP and SIGTERM on, and restarts a worker that dies.
 *
 * Supervisor and workers talk over the worker's stdin and stdout, one JSON object per line;
 * the workers' logs go to the shared standard error.
 *
 * @module
 */

import { log, recentProblems } from "../proxy/observe/log.ts";
import denoJson from "../deno.json" with { type: "json" };
import { combineWorkers, type MetricsSnapshot, Registry } from "../proxy/observe/metrics.ts";
import { ServiceMetrics } from "../proxy/observe/service_metrics.ts";
import type { StatusReport } from "../proxy/observe/status.ts";

/** Set in a worker's environment: its index. */
export const WORKER_ENV = "EDGEMUX_WORKER";

/** Each certificate once (by file and names), with the earliest expiry any report gives. */
function earliestCertificates(reports: StatusReport[]): StatusReport["certificates"] {
  const byKey = new Map<string, StatusReport["certificates"][number]>();
  for (const c of reports.flatMap((r) => r.certificates)) {
    const key = JSON.stringify([c.file, c.names]);
    const seen = byKey.get(key);
    if (seen === undefined || Date.parse(c.notAfter) < Date.parse(seen.notAfter)) byKey.set(key, c);
  }
  return [...byKey.values()];
}

/** What a worker tells the supervisor. */
export type WorkerMessage =
  | { type: "ready"; pid: number }
  | { type: "reloaded"; ok: boolean; error?: string }
  | { type: "reply"; id: number; data: unknown };

/** What the supervisor asks a worker. */
export type SupervisorRequest = { type: "metrics" | "status"; id: number };

const encoder = new TextEncoder();

/** Reads JSON lines from a stream and calls `onLine` for each object. */
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (v: unknown) => void) {
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for await (const chunk of stream) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line === "") continue;
        try {
          onLine(JSON.parse(line));
        } catch {
          // Not a message (stray output); ignore it.
        }
      }
    }
  } catch {
    // The other side is gone.
  }
}

/**
 * One line per ACME name over all workers: the most advanced state any worker reports (only
 * one of them orders; the others wait for its certificate), with the certificates they issued
 * added up.
 */
function mergeAcme(reports: StatusReport[]): NonNullable<StatusReport["acme"]> {
  const rank = { valid: 4, ordering: 3, failed: 2, waiting: 1, starting: 0 } as const;
  const byName = new Map<string, NonNullable<StatusReport["acme"]>[number]>();
  for (const a of reports.flatMap((r) => r.acme ?? [])) {
    const seen = byName.get(a.name);
    if (seen === undefined) byName.set(a.name, { ...a });
    else {
      const issued = seen.issued + a.issued;
      if (rank[a.state] > rank[seen.state]) byName.set(a.name, { ...a, issued });
      else seen.issued = issued;
    }
  }
  return [...byName.values()].sort((a, b) => a.name < b.name ? -1 : 1);
}

/** The worker's end of the channel. */
export class WorkerChannel {
  readonly #writer = Deno.stdout.writable.getWriter();

  /** Answers the supervisor's questions with `answer` until stdin closes. */
  serve(answer: (req: SupervisorRequest) => Promise<unknown> | unknown): void {
    void readLines(Deno.stdin.readable, async (v) => {
      const req = v as SupervisorRequest;
      if (typeof req?.id !== "number") return;
      try {
        await this.send({ type: "reply", id: req.id, data: await answer(req) });
      } catch {
        // The supervisor asked and left; nothing to answer.
      }
    });
  }

  async send(message: WorkerMessage): Promise<void> {
    await this.#writer.write(encoder.encode(JSON.stringify(message) + "\n"));
  }
}

interface Worker {
  index: number;
  child: Deno.ChildProcess;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  pid: number;
  ready: boolean;
  exited: Promise<Deno.CommandStatus>;
  waiting: Map<number, (data: unknown) => void>;
  onReload?: (ok: boolean, error?: string) => void;
}

/** How to start one worker process. */
export interface WorkerCommand {
  command: string;
  args: string[];
}

/** Starts, watches and stops the worker processes. */
export class Supervisor {
  readonly #workers: (Worker | null)[];
  #stopping = false;
  #nextId = 1;
  #readyWaiters: (() => void)[] = [];
  readonly #registry = new Registry();
  /** The service's own metrics and reload history: one reload of the service counts once. */
  readonly service: ServiceMetrics = new ServiceMetrics(this.#registry);

  constructor(readonly count: number, readonly command: WorkerCommand) {
    this.#workers = new Array(count).fill(null);
  }

  /** PIDs of the running workers. */
  get pids(): number[] {
    return this.#workers.filter((w): w is Worker => w !== null).map((w) => w.pid);
  }

  /** True when every worker has said it is ready. */
  get ready(): boolean {
    return this.#workers.every((w) => w !== null && w.ready);
  }

  /**
   * Starts every worker and resolves when all are ready, or rejects when one exits first
   * (a bind or config error it has already logged).
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.count; i++) this.#spawn(i);
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.ready) resolve();
      };
      this.#readyWaiters.push(check);
      this.#failStart = reject;
      check();
    });
    this.#failStart = null;
  }

  #failStart: ((e: Error) => void) | null = null;

  #spawn(index: number): void {
    const child = new Deno.Command(this.command.command, {
      args: this.command.args,
      env: { [WORKER_ENV]: String(index) },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const worker: Worker = {
      index,
      child,
      writer: child.stdin.getWriter(),
      pid: child.pid,
      ready: false,
      exited: child.status,
      waiting: new Map(),
    };
    this.#workers[index] = worker;
    void readLines(child.stdout, (v) => this.#onMessage(worker, v as WorkerMessage));
    void worker.exited.then((status) => this.#onExit(worker, status));
  }

  #onMessage(w: Worker, m: WorkerMessage): void {
    switch (m.type) {
      case "ready":
        w.ready = true;
        for (const f of this.#readyWaiters) f();
        break;
      case "reloaded":
        w.onReload?.(m.ok, m.error);
        break;
      case "reply":
        w.waiting.get(m.id)?.(m.data);
        w.waiting.delete(m.id);
        break;
    }
  }

  #onExit(w: Worker, status: Deno.CommandStatus): void {
    if (this.#workers[w.index] === w) this.#workers[w.index] = null;
    for (const resolve of w.waiting.values()) resolve(null);
    if (this.#stopping) return;
    if (!w.ready && this.#failStart !== null) {
      this.#failStart(
        new Error(`worker ${w.index} exited with code ${status.code} while starting`),
      );
      return;
    }
    log.error("worker exited; starting a new one", {
      worker: w.index,
      pid: w.pid,
      code: status.code,
      signal: status.signal,
    });
    setTimeout(() => {
      if (!this.#stopping && this.#workers[w.index] === null) this.#spawn(w.index);
    }, 1000);
  }

  /** Sends `signal` to every worker. */
  signal(signal: Deno.Signal): void {
    for (const w of this.#workers) {
      try {
        w?.child.kill(signal);
      } catch {
        // It exited a moment ago.
      }
    }
  }

  /**
   * Asks every worker to reload (SIGHUP) and resolves with the first failure, or null when all
   * reloaded. A worker that does not answer within `timeoutMs` counts as a failure.
   */
  async reload(timeoutMs = 30_000): Promise<string | null> {
    const results = await Promise.all(
      this.#workers.filter((w): w is Worker => w !== null).map((w) =>
        new Promise<string | null>((resolve) => {
          const timer = setTimeout(() => resolve(`worker ${w.index} did not answer`), timeoutMs);
          w.onReload = (ok, error) => {
            clearTimeout(timer);
            w.onReload = undefined;
            resolve(ok ? null : error ?? "reload failed");
          };
          try {
            w.child.kill("SIGHUP");
          } catch {
            clearTimeout(timer);
            resolve(`worker ${w.index} is gone`);
          }
        })
      ),
    );
    return results.find((r) => r !== null) ?? null;
  }

  /** Asks every worker and gathers the answers (null for one that did not answer in time). */
  async #ask(
    type: SupervisorRequest["type"],
    timeoutMs = 2000,
  ): Promise<{ worker: number; data: unknown }[]> {
    return await Promise.all(
      this.#workers.filter((w): w is Worker => w !== null && w.ready).map(async (w) => {
        const id = this.#nextId++;
        const data = await new Promise<unknown>((resolve) => {
          const timer = setTimeout(() => {
            w.waiting.delete(id);
            resolve(null);
          }, timeoutMs);
          w.waiting.set(id, (data) => {
            clearTimeout(timer);
            resolve(data);
          });
          w.writer.write(encoder.encode(JSON.stringify({ type, id }) + "\n")).catch(() => {
            clearTimeout(timer);
            resolve(null);
          });
        });
        return { worker: w.index, data };
      }),
    );
  }

  /** The supervisor's and the workers' metrics, each combined as its meaning says. */
  async metrics(): Promise<MetricsSnapshot> {
    const snaps = (await this.#ask("metrics")).filter((a) => Array.isArray(a.data)).map((a) => ({
      worker: a.worker,
      snapshot: a.data as MetricsSnapshot,
    }));
    return combineWorkers(this.#registry.snapshot(), snaps);
  }

  /**
   * One status report for the service: the supervisor's version, start and reloads (as
   * `/metrics` counts them), sums of the workers' counts, and one worker's view of the rest.
   */
  async status(): Promise<StatusReport | null> {
    const reports = (await this.#ask("status")).map((a) => a.data).filter((r): r is StatusReport =>
      r !== null && typeof r === "object"
    );
    if (reports.length === 0) return null;
    const first = reports[0];
    const now = Date.now();
    return {
      ...first,
      version: denoJson.version,
      pid: Deno.pid,
      startedAt: new Date(this.service.started).toISOString(),
      uptimeSeconds: Math.floor((now - this.service.started) / 1000),
      reloads: this.service.reloads,
      workers: reports.map((r) => r.pid),
      activeConnections: reports.reduce((n, r) => n + r.activeConnections, 0),
      listeners: first.listeners.map((l, i) => ({
        ...l,
        active: reports.reduce((n, r) => n + (r.listeners[i]?.active ?? 0), 0),
      })),
      backends: first.backends.map((b, i) => ({
        ...b,
        servers: b.servers.map((s, j) => {
          // A server is up when every worker sees it up (as edgemux_backend_server_up says);
          // the reason is the first worker's that has it down.
          const down = reports.map((r) => r.backends[i]?.servers[j]).find((x) => x?.up === false);
          return {
            ...s,
            active: reports.reduce((n, r) => n + (r.backends[i]?.servers[j]?.active ?? 0), 0),
            up: down === undefined,
            reason: down?.reason ?? null,
          };
        }),
      })),
      // The earliest expiry of each certificate any worker serves (as the metric says).
      certificates: earliestCertificates(reports),
      ...(first.acme === undefined ? {} : { acme: mergeAcme(reports) }),
      // The supervisor's own (a config it refused, a worker that died) and the workers'.
      recentProblems: [...recentProblems(), ...reports.flatMap((r) => r.recentProblems)]
        .sort((a, b) => b.time.localeCompare(a.time))
        .slice(0, 50),
    };
  }

  /** Passes the stop signal on and waits for every worker to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    this.#stopping = true;
    this.signal(signal);
    await Promise.all(this.#workers.map((w) => w?.exited));
  }
}
