/**
 * One process serving every listener: the default, and each worker under a supervisor
 * (./supervise.ts). Starts the proxy and the admin listener, reloads on request, stops on the
 * first stop signal.
 *
 * @module
 */

import { start } from "../mod.ts";
import type { PreparedConfig, ProxyHandle } from "../mod.ts";
import { formatHostPort } from "../config/address.ts";
import { log } from "../proxy/observe/log.ts";
import { BindError } from "../proxy/runtime.ts";
import { adminAccess, type AdminServer, type AdminSource, startAdmin } from "./admin.ts";
import {
  issuesText,
  loadPrepared,
  moveAdmin,
  type RunFlags,
  setupLogging,
  VERSION,
} from "./process.ts";
import type { Notifier } from "./sd_notify.ts";
import { type Exit, onReloadRequest, stopSignal } from "./signals.ts";
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
  let stopping = false;
  const source: AdminSource = {
    metrics: () => proxy.metrics.registry.snapshot(),
    status: () => proxy.status(),
    ready: () => !stopping,
  };
  let admin: AdminServer | null = null;
  if (!worker && prepared.config.admin !== null) {
    try {
      admin = startAdmin(
        prepared.config.admin.bind,
        source,
        adminAccess(prepared.config.admin, prepared.adminToken),
      );
    } catch (e) {
      log.error(e instanceof Error ? e.message : String(e), {});
      await proxy.shutdown(0);
      return 3;
    }
  }
  const channel = worker ? new WorkerChannel() : null;
  channel?.serve((req) => req.type === "metrics" ? source.metrics() : source.status());

  let current = prepared.config;
  const stopWatching = onReloadRequest(() => current, flags.path, async () => {
    await notifier.reloading();
    const started = performance.now();
    try {
      let next: PreparedConfig | null = null;
      await proxy.reload(async () => next = await loadPrepared(flags.path));
      const config = next!.config;
      if (JSON.stringify(config.log) !== JSON.stringify(current.log)) {
        await setupLogging(config, flags);
      }
      if (!worker) admin = await moveAdmin(admin, current, next!, source);
      if (config.workers !== current.workers && !worker) {
        log.warn("a change of workers takes effect at the next restart", {
          workers: config.workers,
        });
      }
      current = config;
      log.info("config reloaded", { ms: Math.round(performance.now() - started) });
      await channel?.send({ type: "reloaded", ok: true });
    } catch (e) {
      log.error("reload failed; the running config stays", { error: issuesText(e) });
      await channel?.send({ type: "reloaded", ok: false, error: issuesText(e) });
    }
    await notifier.ready("serving");
  });

  log.info("edgemux started", {
    version: VERSION,
    config: flags.path,
    pid: Deno.pid,
    admin: admin ? formatHostPort({ host: admin.addr.hostname, port: admin.addr.port }) : null,
    worker: worker ? Deno.env.get(WORKER_ENV) : null,
  });
  await channel?.send({ type: "ready", pid: Deno.pid });
  await notifier.ready("serving");

  const signal = await stopSignal(() => void proxy.shutdown(0), exit);
  stopping = true;
  stopWatching();
  await notifier.stopping();
  log.info("stopping", { signal, timeout_ms: current.shutdownTimeout });
  await proxy.shutdown();
  await admin?.close();
  log.info("stopped", {});
  return 0;
}
