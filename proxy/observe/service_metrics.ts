/**
 * What describes an edgemux service as a whole rather than its traffic: its build, when it
 * started, its reloads, and the `process_*` metrics every Prometheus client library exports
 * (the names and meanings of client_golang's process collector). With `workers: N` the
 * supervisor keeps the service's values and each process reports its own `process_*`
 * (the `Across` choices in ./metrics.ts).
 *
 * The reload history here is also what the status page shows, so `/metrics` and
 * `/status.json` cannot disagree.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import type { Registry, Series } from "./metrics.ts";
import { processStats } from "./process_stats.ts";
import type { StatusReport } from "./status.ts";

/** The reloads of one service, as the status page shows them. */
export type ReloadHistory = StatusReport["reloads"];

/** Build, start time, reloads and process metrics of one process (or of the supervisor). */
export class ServiceMetrics {
  readonly #reloadsTotal: Series;
  readonly #lastReload: Series;
  readonly #reloadSeconds: Series;
  readonly #history: ReloadHistory = {
    count: 0,
    failures: 0,
    lastOk: null,
    lastFailure: null,
    lastError: null,
  };
  /** When this process started, in Unix milliseconds. */
  readonly started: number = Date.now();

  constructor(registry: Registry) {
    const r = registry;
    r.gauge(
      "edgemux_build_info",
      "Always 1; the labels say the edgemux version and the Deno runtime it runs on.",
      ["version", "deno"],
      { across: "supervisor" },
      // A compiled binary runs the runtime of the Deno that compiled it, so Deno.version.deno
      // is build_info.ts's `deno` there, and the right answer from source too. The commit and
      // target stay with `edgemux version`: build_info.ts is not part of the published library.
    ).set([denoJson.version, Deno.version.deno], 1);
    r.gauge(
      "edgemux_start_time_seconds",
      "When edgemux started (the supervisor, with workers), in Unix seconds.",
      [],
      { across: "supervisor" },
    ).set([], Math.floor(this.started / 1000));
    this.#reloadsTotal = r.counter(
      "edgemux_reloads_total",
      "Config reloads, by result (success or failure); with workers, one per reload of the " +
        "service.",
      ["result"],
      { across: "supervisor" },
    );
    this.#lastReload = r.gauge(
      "edgemux_last_reload_timestamp_seconds",
      "When the last reload with each result happened, in Unix seconds.",
      ["result"],
      { across: "supervisor" },
    );
    this.#reloadSeconds = r.gauge(
      "edgemux_last_reload_duration_seconds",
      "How long the last reload took.",
      [],
      { across: "supervisor" },
    );
    this.#reloadsTotal.init(["success"]);
    this.#reloadsTotal.init(["failure"]);
    registerProcessMetrics(r);
  }

  /** Records a reload: `error` is null when it succeeded. */
  reload(error: string | null, ms: number): void {
    const now = Date.now();
    const result = error === null ? "success" : "failure";
    if (error === null) {
      this.#history.count++;
      this.#history.lastOk = now;
    } else {
      this.#history.failures++;
      this.#history.lastFailure = now;
      this.#history.lastError = error;
    }
    this.#reloadsTotal.inc([result]);
    this.#lastReload.set([result], Math.floor(now / 1000));
    this.#reloadSeconds.set([], ms / 1000);
  }

  /** A copy of the reload history. */
  get reloads(): ReloadHistory {
    return { ...this.#history };
  }
}

/**
 * `process_*` (the names and meanings of client_golang's process collector), read at each
 * scrape. A value that cannot be read (no libc for the FFI) is left out rather than reported
 * as 0.
 */
function registerProcessMetrics(r: Registry): void {
  const cpu = r.counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    [],
    { across: "worker" },
  );
  const resident = r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [], {
    across: "worker",
  });
  const start = r.gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    [],
    { across: "worker" },
  );
  const openFds = r.gauge("process_open_fds", "Number of open file descriptors.", [], {
    across: "worker",
  });
  const maxFds = r.gauge("process_max_fds", "Maximum number of open file descriptors.", [], {
    across: "worker",
  });
  r.collect(() => {
    const stats = processStats();
    cpu.set([], stats.cpuSeconds);
    resident.set([], stats.residentBytes);
    start.set([], stats.startSeconds);
    if (stats.openFds !== null) openFds.set([], stats.openFds);
    if (stats.maxFds !== null) maxFds.set([], stats.maxFds);
  });
}
