/**
 * The status report behind the admin listener's page and `/status.json`, how routes read in it
 * (and in `edgemux routes`), and the page itself: one self-contained HTML document with no
 * external assets, refreshing itself.
 *
 * @module
 */

import { assertNever, type HostPattern, type RouteConfig } from "../../config/types.ts";
import type { Problem } from "./log.ts";
import { formatHostPattern } from "../../routing/hosts.ts";
import type { AcmeNameStatus } from "../tls/certs/acme.ts";

/** Everything the status page shows. */
export interface StatusReport {
  /** edgemux's version, from deno.json. */
  version: string;
  /** The process id of the process that answered. */
  pid: number;
  /** When the process started, ISO 8601 in UTC. */
  startedAt: string;
  /** Whole seconds since the process started. */
  uptimeSeconds: number;
  /** The config files in force, in merge order. */
  configFiles: readonly string[];
  /**
   * Reloads since start: how many succeeded and failed, when the last of each happened (Unix
   * milliseconds), and the last failure's message (kept after a later success, which
   * `lastOk > lastFailure` tells).
   */
  reloads: {
    count: number;
    failures: number;
    lastOk: number | null;
    lastFailure: number | null;
    lastError: string | null;
  };
  /** Client connections open right now, over all listeners. */
  activeConnections: number;
  /**
   * Every listener: its bound addresses (`host:port`), its open connections, and each route's
   * name with its match and action described as `edgemux routes` prints them.
   */
  listeners: {
    name: string;
    addresses: string[];
    active: number;
    routes: { name: string; match: string; action: string }[];
  }[];
  /**
   * Every backend: its balance algorithm, its health check kind (null without one) and each
   * server's address, health (`up`, with the `reason` it is down), open connections, weight and
   * backup flag.
   */
  backends: {
    name: string;
    balance: string;
    healthCheck: string | null;
    servers: {
      address: string;
      up: boolean;
      active: number;
      weight: number;
      backup: boolean;
      reason: string | null;
    }[];
  }[];
  /**
   * Every certificate loaded: the names it serves, its expiry (ISO 8601) and the file it was
   * read from.
   */
  certificates: {
    names: string[];
    notAfter: string;
    file: string;
    development: boolean;
    /** Where it came from: a configured file, the ACME CA, or the development certificate. */
    source?: "file" | "acme" | "development";
  }[];
  /** Names whose certificates edgemux orders from an ACME CA, when `certificates.acme` is set. */
  acme?: AcmeNameStatus[];
  /** The last logged warnings and errors (up to 50), newest first. */
  recentProblems: Problem[];
  /** Worker processes' pids, when more than one serves (`pid` is then the supervisor's). */
  workers?: number[];
}

/** The ACME section of the status page: one row per name edgemux orders for. */
function acmeTable(names: AcmeNameStatus[]): string {
  const time = (t: string | null) => t === null ? "" : esc(t.slice(0, 19).replace("T", " "));
  return `
<h2>ACME</h2>
<table><thead><tr><th>Name</th><th>State</th><th>Expires</th><th>Next renewal or retry</th><th>Failures</th><th>Last error</th></tr></thead><tbody>
${
    names.map((a) =>
      `<tr><td>${esc(a.name)}</td><td class="${
        a.state === "valid" ? "ok" : a.state === "failed" ? "bad" : "warn"
      }">${esc(a.state)}</td><td>${time(a.notAfter)}</td><td>${time(a.nextAttempt)}</td><td>${
        esc(a.failures)
      }</td><td>${esc(a.lastError ?? "")}</td></tr>`
    ).join("") || '<tr><td colspan="6" class="muted">no names to order</td></tr>'
  }
</tbody></table>`;
}

function pattern(p: HostPattern): string {
  return formatHostPattern(p);
}

/** A route's match in one line: `tls sni=vault.example.test alpn=h2`. */
export function describeMatch(r: RouteConfig): string {
  const parts = [r.match.protocols === null ? "any protocol" : r.match.protocols.join("|")];
  if (r.match.sni !== null) parts.push(`sni=${r.match.sni.map(pattern).join(",")}`);
  else if (r.match.protocols?.includes("tls")) parts.push("any server name");
  if (r.match.alpn !== null) parts.push(`alpn=${r.match.alpn.join(",")}`);
  return parts.join(" ");
}

/** A route's action in one line: `passthrough → vault`, `edge http (3 routes)`. */
export function describeAction(r: RouteConfig): string {
  const a = r.action;
  switch (a.kind) {
    case "passthrough":
    case "forward":
      return `${a.kind} → ${a.backend}`;
    case "reject":
      return "reject";
    case "redirect":
      return `redirect ${a.status} to https${a.httpsPort ? ` port ${a.httpsPort}` : ""}${
        a.acmeBackend ? `, ACME → ${a.acmeBackend}` : ""
      }`;
    case "edge":
    case "reencrypt":
      if (a.upstream.kind === "tcp") return `${a.kind} tcp → ${a.upstream.backend}`;
      return `${a.kind} http: ` + a.upstream.routes.map((h) => {
        const where = [
          h.hosts ? h.hosts.map(pattern).join(",") : "*",
          h.path ? (h.path.kind === "exact" ? `=${h.path.value}` : `${h.path.value}*`) : "",
        ].join("");
        return `${where} → ${
          h.action.kind === "backend" ? h.action.backend : `redirect ${h.action.location}`
        }`;
      }).join("; ");
    default:
      return assertNever(a, "route action");
  }
}

function esc(s: string | number): string {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${seconds % 60}s`;
}

/**
 * The red banner while the config on disk is one that failed to load (the last reload failed);
 * once a later reload succeeds, only a muted line saying when the last failure was.
 */
function reloadNotice(r: StatusReport["reloads"]): string {
  if (r.lastFailure === null || r.lastError === null) return "";
  if (r.lastOk === null || r.lastFailure > r.lastOk) {
    return `<p class="bad" id="reload-failed">Last reload failed; the running config stays: ${
      esc(r.lastError)
    }</p>`;
  }
  return `<p class="muted" id="reload-recovered">A reload failed at ${
    esc(new Date(r.lastFailure).toISOString())
  }; a later one succeeded at ${esc(new Date(r.lastOk).toISOString())}.</p>`;
}

/** The status page: self-contained HTML that reloads itself every `refreshSeconds`. */
export function renderStatusPage(s: StatusReport, refreshSeconds = 5): string {
  const serversDown = s.backends.reduce((n, b) => n + b.servers.filter((x) => !x.up).length, 0);
  const soon = Date.now() + 14 * 86400_000;
  const rows = <T>(items: T[], cells: (t: T) => string, empty: string) =>
    items.length === 0
      ? `<tr><td colspan="9" class="muted">${empty}</td></tr>`
      : items.map(cells).join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${refreshSeconds}">
<title>edgemux status${serversDown ? ` (${serversDown} down)` : ""}</title>
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --line: #8884; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; max-width: 1100px; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-weight: 600; }
  code { font: 12.5px ui-monospace, monospace; }
  .ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
  .warn { color: var(--warn); } .muted { opacity: .65; }
  .summary span { margin-right: 1.4rem; }
</style>
</head>
<body>
<h1>edgemux ${esc(s.version)}</h1>
<p class="summary"><span>up ${esc(duration(s.uptimeSeconds))}</span><span>pid ${esc(s.pid)}${
    s.workers ? `, workers ${esc(s.workers.join(", "))}` : ""
  }</span><span>${esc(s.activeConnections)} open connections</span><span>${
    esc(s.reloads.count)
  } reloads${
    s.reloads.failures ? `, <span class="bad">${esc(s.reloads.failures)} failed</span>` : ""
  }</span><span class="muted">config ${esc(s.configFiles.join(", "))}</span></p>
${reloadNotice(s.reloads)}
<h2>Backends</h2>
<table><thead><tr><th>Backend</th><th>Server</th><th>State</th><th>Active</th><th>Weight</th><th>Why down</th></tr></thead><tbody>
${
    s.backends.flatMap((b) =>
      b.servers.map((x, i) =>
        `<tr><td>${
          i === 0
            ? `<b>${esc(b.name)}</b> <span class="muted">${esc(b.balance)}${
              b.healthCheck ? `, ${esc(b.healthCheck)} check` : ""
            }</span>`
            : ""
        }</td><td><code>${esc(x.address)}</code>${
          x.backup ? ' <span class="muted">backup</span>' : ""
        }</td><td class="${x.up ? "ok" : "bad"}">${x.up ? "up" : "down"}</td><td>${
          esc(x.active)
        }</td><td>${esc(x.weight)}</td><td>${esc(x.reason ?? "")}</td></tr>`
      )
    ).join("") || '<tr><td colspan="6" class="muted">no backends</td></tr>'
  }
</tbody></table>
<h2>Listeners and routes</h2>
<table><thead><tr><th>Listener</th><th>Address</th><th>Open</th><th>Route</th><th>Match</th><th>Action</th></tr></thead><tbody>
${
    s.listeners.flatMap((l) =>
      l.routes.map((r, i) =>
        `<tr><td>${i === 0 ? `<b>${esc(l.name)}</b>` : ""}</td><td>${
          i === 0 ? l.addresses.map((a) => `<code>${esc(a)}</code>`).join("<br>") : ""
        }</td><td>${i === 0 ? esc(l.active) : ""}</td><td>${esc(r.name)}</td><td><code>${
          esc(r.match)
        }</code></td><td><code>${esc(r.action)}</code></td></tr>`
      )
    ).join("")
  }
</tbody></table>
<h2>Certificates</h2>
<table><thead><tr><th>Names</th><th>Source</th><th>Expires</th><th>File</th></tr></thead><tbody>
${
    rows(
      s.certificates,
      (c) =>
        `<tr><td>${esc(c.names.join(", "))}${
          c.development ? ' <span class="warn">development (self-signed)</span>' : ""
        }</td><td>${esc(c.source ?? "")}</td><td class="${
          Date.parse(c.notAfter) < soon ? "bad" : ""
        }">${esc(c.notAfter.slice(0, 16).replace("T", " "))}</td><td><code>${
          esc(c.file)
        }</code></td></tr>`,
      "no terminating routes",
    )
  }
</tbody></table>${s.acme === undefined ? "" : acmeTable(s.acme)}
<h2>Recent problems</h2>
<table><thead><tr><th>Time</th><th>Level</th><th>What</th></tr></thead><tbody>
${
    rows(
      s.recentProblems.slice(0, 20),
      (p) =>
        `<tr><td><code>${esc(p.time.slice(11, 19))}</code></td><td class="${
          p.level === "warning" ? "warn" : "bad"
        }">${esc(p.level)}</td><td>${esc(p.message)} <span class="muted">${
          esc(
            Object.entries(p.details).map(([k, v]) =>
              `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
            ).join(" "),
          )
        }</span></td></tr>`,
      "none since start",
    )
  }
</tbody></table>
<p class="muted">Refreshes every ${refreshSeconds} s · <a href="/metrics">/metrics</a> · <a href="/status.json">/status.json</a> · started ${
    esc(s.startedAt)
  }</p>
</body>
</html>
`;
}
