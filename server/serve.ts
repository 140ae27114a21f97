/**
 * One process serving every listener: the default, and each worker under a supervisor
 * (./supervise.ts). Starts the proxy, then lives as ./lifecycle.ts says; what is its own is how a
 * reload reaches the proxy (and logging), and a worker's channel to its supervisor.
 *
 * @module
 */

import { start } from "../mod.ts";
import type { PreparedConfig, ProxyHandle } from "../mod.ts";
import { log } from "../proxy/observe/log.ts";
import { BindError } from "../proxy/bind.ts";
import { serveUntilStopped } from "./lifecycle.ts";
import { loadPrepared, type RunFlags, setupLogging } from "./process.ts";
import type { Notifier } from "./sd_notify.ts";
import type { Exit } from "./signals.ts";
import { WORKER_ENV, WorkerChannel } from "./workers.ts";

/**
 * Serves until the first stop signal; returns the exit code (0 stopped, 3 could not bind or
 * start). `exit` ends the process when a second stop signal's grace runs out.
 */
export async function serve(
  prepared: PreparedConfig,
  flags: RunFlags,
  notifier: Notifier,
  worker: boolean,
  exit: Exit,
): Promise<number> {
  let proxy: ProxyHandle;
  try {
    proxy = await start(prepared, { reusePort: worker || prepared.config.workers > 1 });
  } catch (e) {
    if (!(e instanceof BindError)) throw e;
    log.error(e.message, { listener: e.listener, address: e.address });
    return 3;
  }
  const metrics = () => proxy.metrics.registry.snapshot();
  const status = () => proxy.status();
  const channel = worker ? new WorkerChannel() : null;
  channel?.serve((req) => req.type === "metrics" ? metrics() : status());

  return await serveUntilStopped(prepared, flags, notifier, exit, {
    admin: !worker,
    metrics,
    status,
    ready: () => true,
    async reload(current) {
      let next: PreparedConfig | null = null;
      await proxy.reload(async () => next = await loadPrepared(flags.path));
      if (JSON.stringify(next!.config.log) !== JSON.stringify(current.log)) {
        await setupLogging(next!.config, flags);
      }
      return next!;
    },
    async reloaded(before, after, started) {
      if (after.workers !== before.workers && !worker) {
        log.warn("a change of workers takes effect at the next restart", {
          workers: after.workers,
        });
      }
      log.info("config reloaded", { ms: Math.round(performance.now() - started) });
      await channel?.send({ type: "reloaded", ok: true });
    },
    async reloadFailed(error) {
      await channel?.send({ type: "reloaded", ok: false, error });
    },
    startedFields: (admin) => ({ admin, worker: worker ? Deno.env.get(WORKER_ENV) : null }),
    announce: async () => await channel?.send({ type: "ready", pid: Deno.pid }),
    readyStatus: "serving",
    stoppingFields: (current) => ({ timeout_ms: current.shutdownTimeout }),
    hurry: () => void proxy.shutdown(0),
    stop: () => proxy.shutdown(),
    abort: () => proxy.shutdown(0),
  });
}
