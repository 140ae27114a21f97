/**
 * A backend's servers at run time: which are healthy, how busy each is, and which one the
 * next connection goes to. Active health checks (health.ts) and real traffic (passive health)
 * both feed the same per-server state, and every pick skips servers that are down or full.
 *
 * @module
 */

import type { BackendConfig, ServerConfig } from "../../config/types.ts";
import { log } from "../observe/log.ts";

/** One server's run-time state. */
export class ServerState {
  /** Open connections, or in-flight HTTP requests, on this server. */
  active = 0;
  /** Down by active health checks. */
  checkedDown = false;
  /** Down by passive health until this time (Date.now()). */
  passiveUntil = 0;
  /** Consecutive failures seen by real traffic. */
  failures = 0;
  /** Smooth weighted round robin's running score. */
  score = 0;
  /** Consecutive check results in the direction of a change, for rise/fall. */
  streak = 0;
  /** What the logs last said about this server, so each change is logged once. */
  reportedUp = true;
  /** Why it last went down, for the status page. */
  reason: string | null = null;

  constructor(public config: ServerConfig) {}

  /** Healthy by both active checks and passive health. */
  up(now: number): boolean {
    return !this.checkedDown && now >= this.passiveUntil;
  }

  /** Below its connection cap. */
  hasRoom(): boolean {
    return this.config.maxConnections === null || this.active < this.config.maxConnections;
  }
}

/** Why no server could be picked. */
export type NoServer = "all-down" | "all-full";

/** A backend with its servers' state and its balancing algorithm. */
export class Backend {
  readonly servers: ServerState[];
  #rotation = 0;
  /**
   * Relayed connections open now per client (limits.ts `clientKey`), for
   * `max_connections_per_client`; shared with the previous generation's Backend, since the
   * connections it counts outlive a reload.
   */
  readonly #perClient: Map<string, number>;

  constructor(readonly config: BackendConfig, previous?: Backend) {
    this.#perClient = previous === undefined ? new Map() : previous.#perClient;
    // A server that stays in the backend across a reload keeps its state object: its health,
    // and the count of connections open on it, which those connections decrement when they end.
    this.servers = config.servers.map((s) => {
      const old = previous?.servers.find((o) => o.config.label === s.label);
      if (old === undefined) return new ServerState(s);
      old.config = s;
      return old;
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** Relayed connections open now from the client counted under `key`. */
  clientConnections(key: string): number {
    return this.#perClient.get(key) ?? 0;
  }

  /**
   * Counts one more relayed connection from the client counted under `key`, or returns null
   * when that client has `max_connections_per_client` open already. The returned function
   * must be called once when the connection ends.
   */
  admitClient(key: string): (() => void) | null {
    const cap = this.config.maxConnectionsPerClient;
    const open = this.#perClient.get(key) ?? 0;
    if (cap !== null && open >= cap) return null;
    this.#perClient.set(key, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#perClient.get(key) ?? 1) - 1;
      if (left <= 0) this.#perClient.delete(key);
      else this.#perClient.set(key, left);
    };
  }

  /**
   * The server the next connection should go to, skipping `exclude` (servers already tried),
   * down servers and full ones. Backup servers are used only when no other server is up.
   */
  pick(exclude?: ReadonlySet<ServerState>): ServerState | NoServer {
    const now = Date.now();
    this.#reportChanges(now);
    const usable = (backup: boolean) =>
      this.servers.filter((s) => s.config.backup === backup && !exclude?.has(s) && s.up(now));
    let candidates = usable(false);
    if (candidates.length === 0) candidates = usable(true);
    if (candidates.length === 0) return "all-down";
    // Candidates are up already: only the cap is left to check.
    const open = candidates.filter((s) => s.hasRoom());
    if (open.length === 0) return "all-full";
    return this.#choose(open);
  }

  #choose(open: ServerState[]): ServerState {
    if (open.length === 1) return open[0];
    switch (this.config.balance) {
      case "first":
        return open[0];
      case "round_robin": {
        // Smooth weighted round robin: each pick adds every weight to its server's score and
        // takes the highest, which then pays the total back; weights 1:3 give A B B B evenly mixed.
        let total = 0;
        let best = open[0];
        for (const s of open) {
          s.score += s.config.weight;
          total += s.config.weight;
          if (s.score > best.score) best = s;
        }
        best.score -= total;
        return best;
      }
      case "least_conn": {
        let least = Infinity;
        for (const s of open) least = Math.min(least, s.active / s.config.weight);
        // Ties take turns, so equally loaded servers share the new connections evenly.
        const tied = open.filter((s) => s.active / s.config.weight === least);
        return tied[this.#rotation++ % tied.length];
      }
      case "random": {
        // Power of two choices: two weighted random servers, the less busy one wins.
        const a = weightedRandom(open);
        let b = weightedRandom(open);
        for (let i = 0; i < 4 && b === a; i++) b = weightedRandom(open);
        return a.active / a.config.weight <= b.active / b.config.weight ? a : b;
      }
    }
  }

  /** Real traffic could not connect to `server`. */
  connectFailed(server: ServerState, reason: string): void {
    this.#failure(server, reason);
  }

  /** Real traffic connected to `server`. */
  connectSucceeded(server: ServerState): void {
    server.failures = 0;
  }

  /** A response came back from `server`; 5xx counts as a failure when configured. */
  responded(server: ServerState, status: number): void {
    if (!this.config.passive.on5xx) return;
    if (status >= 500 && status <= 599) this.#failure(server, `HTTP ${status}`);
    else server.failures = 0;
  }

  #failure(server: ServerState, reason: string): void {
    const limit = this.config.passive.failures;
    if (limit === 0) return;
    server.failures++;
    if (server.failures >= limit) {
      server.failures = 0;
      server.passiveUntil = Date.now() + this.config.passive.backoff;
      server.reason = `${limit} failures in a row (${reason})`;
      this.#reportChanges(Date.now());
    }
  }

  /** An active health check changed its verdict on `server`. */
  setChecked(server: ServerState, up: boolean, reason: string): void {
    server.checkedDown = !up;
    if (up) server.passiveUntil = 0;
    else server.reason = reason;
    this.#reportChanges(Date.now());
  }

  /** Logs each server that went up or down since the last report, once. */
  #reportChanges(now: number): void {
    let changed = false;
    for (const s of this.servers) {
      const up = s.up(now);
      if (up === s.reportedUp) continue;
      s.reportedUp = up;
      changed = true;
      if (up) {
        log.info("server up", { backend: this.name, server: s.config.label });
      } else {
        log.warn("server down", { backend: this.name, server: s.config.label, reason: s.reason });
      }
    }
    if (changed && this.servers.every((s) => !s.reportedUp)) {
      log.error("backend has no server up", { backend: this.name });
    }
  }
}

function weightedRandom(servers: ServerState[]): ServerState {
  let total = 0;
  for (const s of servers) total += s.config.weight;
  let r = Math.random() * total;
  for (const s of servers) {
    r -= s.config.weight;
    if (r < 0) return s;
  }
  return servers[servers.length - 1];
}
