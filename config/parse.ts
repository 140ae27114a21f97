/**
 * YAML text → validated {@link Config}. Pure: the caller supplies file names and texts, so
 * `edgemux check`, reload and the tests all run exactly this code.
 *
 * @module
 */

import { formatHostPort, type HostPort, parseHostPort } from "./address.ts";
import { closest, Issues, type MapValue, readYaml, Source, type Value } from "./_reader.ts";
import { BOUNDS, DEFAULTS } from "./defaults.ts";
import { ConfigError, type ConfigIssue, type SourcePosition } from "./errors.ts";
import type {
  BackendConfig,
  Config,
  HostPattern,
  HttpConfig,
  ListenerConfig,
  LogConfig,
  Protocol,
  RedirectAction,
  RouteAction,
  RouteConfig,
  RouteMatch,
  ServerConfig,
} from "./types.ts";
import { PROTOCOLS } from "./types.ts";
import { checkListenerRoutes } from "./_route_checks.ts";

/** One config file's name and text. */
export interface ConfigSource {
  file: string;
  text: string;
}

/** A usable config, with the warnings found while reading it. */
export interface ParsedConfig {
  config: Config;
  warnings: ConfigIssue[];
}

const TOP_LEVEL_KEYS = [
  "version",
  "log",
  "shutdown_timeout",
  "http",
  "backends",
  "listeners",
] as const;
const ACTION_KEYS = ["passthrough", "forward", "redirect", "reject"] as const;
type ActionKey = typeof ACTION_KEYS[number];
const ROUTE_KEYS = ["name", "protocol", "sni", "alpn", ...ACTION_KEYS] as const;

/**
 * Parses and validates one config text.
 *
 * @param text The YAML text.
 * @param file The name used in error messages.
 * @returns The config and any warnings.
 * @throws {ConfigError} With every error found, each naming file, line, column and key path.
 */
export function parseConfig(text: string, file = "config.yaml"): ParsedConfig {
  return parseConfigSources([{ file, text }]);
}

/**
 * Parses and validates a config spread over several files (a config directory). Named maps
 * (`backends`, `listeners`) are merged; a name defined twice, or any other top-level key set in
 * two files, is an error naming both places.
 *
 * @throws {ConfigError} With every error found.
 */
export function parseConfigSources(sources: ConfigSource[]): ParsedConfig {
  const issues = new Issues();
  const tops: MapValue[] = [];
  for (const { file, text } of sources) {
    const root = readYaml(new Source(file, text), issues);
    if (root === undefined) continue;
    if (root.missing) {
      root.error("the file has no settings", "start it with `version: 1`");
      continue;
    }
    const top = root.map(TOP_LEVEL_KEYS);
    if (top === undefined) continue;
    const version = top.require("version", "1");
    if (version !== undefined && version.integer(1, 1) === undefined) {
      // integer() has already said what is wrong.
    }
    tops.push(top);
  }
  if (sources.length === 0) {
    issues.add(
      "error",
      null,
      "",
      "no config files were given",
      "pass a YAML file or a directory of *.yaml files",
    );
  }
  const config = issues.hasErrors
    ? undefined
    : buildConfig(tops, sources.map((s) => s.file), issues);
  if (config === undefined || issues.hasErrors) throw new ConfigError(sortIssues(issues.list));
  return { config, warnings: sortIssues(issues.list.filter((i) => i.severity === "warning")) };
}

function sortIssues(list: ConfigIssue[]): ConfigIssue[] {
  const files = new Map<string, number>();
  for (const i of list) {
    if (i.position && !files.has(i.position.file)) files.set(i.position.file, files.size);
  }
  const key = (i: ConfigIssue) =>
    i.position ? [files.get(i.position.file)!, i.position.line, i.position.column] : [-1, 0, 0];
  return [...list].sort((a, b) => {
    const ka = key(a), kb = key(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
}

/** The value of a top-level key, checking that only one file sets it. */
function single(tops: MapValue[], key: string): Value | undefined {
  let found: Value | undefined;
  for (const top of tops) {
    if (!top.has(key)) continue;
    const value = top.get(key);
    if (found !== undefined) {
      value.error(
        `"${key}" is already set in ${where(found.position)}`,
        `set "${key}" in one file only`,
      );
      continue;
    }
    found = value;
  }
  return found;
}

/** The entries of a named map gathered from every file; a name defined twice is an error. */
function named(tops: MapValue[], key: string, what: string): [string, Value][] {
  const seen = new Map<string, Value>();
  for (const top of tops) {
    if (!top.has(key)) continue;
    const map = top.get(key).map(null);
    if (map === undefined) continue;
    for (const [name, value] of map.entries) {
      const before = seen.get(name);
      if (before !== undefined) {
        value.error(
          `the ${what} "${name}" is already defined at ${where(before.position)}`,
          `rename one of them or remove one definition`,
        );
        continue;
      }
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
        value.error(
          `the ${what} name "${name}" has characters that are not allowed`,
          "use letters, digits, '-', '_' and '.', starting with a letter or digit",
        );
        continue;
      }
      seen.set(name, value);
    }
  }
  return [...seen];
}

function where(p: SourcePosition): string {
  return `${p.file}:${p.line}:${p.column}`;
}

function buildConfig(tops: MapValue[], files: string[], issues: Issues): Config | undefined {
  const log = readLog(single(tops, "log"));
  const shutdown = single(tops, "shutdown_timeout");
  const shutdownTimeout = shutdown === undefined ? DEFAULTS.shutdownTimeout : shutdown.duration();
  const http = readHttp(single(tops, "http"));

  const backends = new Map<string, BackendConfig>();
  const backendEntries = named(tops, "backends", "backend");
  for (const [name, value] of backendEntries) {
    const backend = readBackend(name, value);
    if (backend !== undefined) backends.set(name, backend);
  }
  const listenerEntries = named(tops, "listeners", "listener");
  if (listenerEntries.length === 0) {
    issues.add(
      "error",
      tops[0]?.self.position ?? null,
      "listeners",
      "no listeners are defined, so edgemux would accept nothing",
      "add a `listeners:` map with at least one listener (see config.example.yaml)",
    );
  }
  // References are checked against every defined name, valid or not, so one broken backend
  // does not also produce an error at each route that uses it.
  const backendNames = backendEntries.map(([name]) => name);
  const listeners: ListenerConfig[] = [];
  for (const [name, value] of listenerEntries) {
    const listener = readListener(name, value, backendNames, backendNames.length === 0);
    if (listener !== undefined) listeners.push(listener);
  }
  if (
    issues.hasErrors || log === undefined || shutdownTimeout === undefined || http === undefined
  ) {
    return undefined;
  }

  checkDuplicateBinds(listeners, listenerEntries, issues);
  resolveRedirectPorts(listeners, listenerEntries);
  for (const listener of listeners) checkListenerRoutes(listener, issues);
  warnUnusedBackends(backends, listeners, issues);
  if (issues.hasErrors) return undefined;
  return { files, log, shutdownTimeout, http, backends, listeners };
}

function readLog(value: Value | undefined): LogConfig | undefined {
  const log: LogConfig = { ...DEFAULTS.log };
  if (value === undefined) return log;
  const map = value.map(["level", "format", "access"]);
  if (map === undefined) return undefined;
  if (map.has("level")) {
    const level = map.get("level").oneOf(["debug", "info", "warning", "error"] as const);
    if (level === undefined) return undefined;
    log.level = level;
  }
  if (map.has("format")) {
    const format = map.get("format").oneOf(["text", "json"] as const);
    if (format === undefined) return undefined;
    log.format = format;
  }
  if (map.has("access")) {
    const access = map.get("access").boolean();
    if (access === undefined) return undefined;
    log.access = access;
  }
  return log;
}

function readHttp(value: Value | undefined): HttpConfig | undefined {
  const http: HttpConfig = { ...DEFAULTS.http };
  if (value === undefined) return http;
  const map = value.map([
    "request_head_timeout",
    "keepalive_timeout",
    "max_head_size",
    "max_headers",
  ]);
  if (map === undefined) return undefined;
  let ok = true;
  const set = <K extends keyof HttpConfig>(key: K, v: HttpConfig[K] | undefined) => {
    if (v === undefined) ok = false;
    else http[key] = v;
  };
  if (map.has("request_head_timeout")) {
    set("requestHeadTimeout", map.get("request_head_timeout").duration(100));
  }
  if (map.has("keepalive_timeout")) {
    set("keepaliveTimeout", map.get("keepalive_timeout").duration(100));
  }
  if (map.has("max_head_size")) {
    const { min, max } = BOUNDS.maxHeadSize;
    set("maxHeadSize", map.get("max_head_size").size(min, max));
  }
  if (map.has("max_headers")) {
    const { min, max } = BOUNDS.maxHeaders;
    set("maxHeaders", map.get("max_headers").integer(min, max));
  }
  return ok ? http : undefined;
}

function readBackend(name: string, value: Value): BackendConfig | undefined {
  const map = value.map(["servers", "connect_timeout", "proxy_protocol"]);
  if (map === undefined) return undefined;
  const serversValue = map.require("servers", '["127.0.0.1:8080"]');
  const servers: ServerConfig[] = [];
  for (const item of serversValue?.list({ single: true, nonEmpty: true }) ?? []) {
    const text = item.string('"host:port", e.g. "127.0.0.1:8200"');
    if (text === undefined) continue;
    const address = parseHostPort(text.trim(), { bindOnly: false, allowPortZero: false });
    if ("problem" in address) {
      item.error(`server address "${text}": ${address.problem}`, address.fix);
      continue;
    }
    const label = formatHostPort(address);
    if (servers.some((s) => s.label === label)) {
      item.error(`the server ${label} is listed twice`, "remove the duplicate");
      continue;
    }
    servers.push({ address, label });
  }
  const connectTimeout = map.has("connect_timeout")
    ? map.get("connect_timeout").duration(1)
    : DEFAULTS.backend.connectTimeout;
  const proxyProtocol = map.has("proxy_protocol")
    ? map.get("proxy_protocol").oneOf(["off", "v1", "v2"] as const)
    : DEFAULTS.backend.proxyProtocol;
  if (connectTimeout === undefined || proxyProtocol === undefined || servers.length === 0) {
    return undefined;
  }
  return { name, servers, connectTimeout, proxyProtocol, position: value.position };
}

function readListener(
  name: string,
  value: Value,
  backendNames: string[],
  noBackends: boolean,
): ListenerConfig | undefined {
  const map = value.map(["bind", "sniff", "idle_timeout", "routes"]);
  if (map === undefined) return undefined;
  const binds: HostPort[] = [];
  const bindValue = map.require("bind", '"[::]:443"');
  for (const item of bindValue?.list({ single: true, nonEmpty: true }) ?? []) {
    const text = item.string('"[::]:443" or "0.0.0.0:443"');
    if (text === undefined) continue;
    const address = parseHostPort(text.trim(), { bindOnly: true, allowPortZero: true });
    if ("problem" in address) {
      item.error(`bind address "${text}": ${address.problem}`, address.fix);
      continue;
    }
    binds.push(address);
  }

  const sniff: ListenerConfig["sniff"] = {
    timeout: DEFAULTS.listener.sniff.timeout,
    silentAfter: DEFAULTS.listener.sniff.silentAfter,
    maxHelloSize: DEFAULTS.listener.sniff.maxHelloSize,
  };
  let sniffOk = true;
  if (map.has("sniff")) {
    const s = map.get("sniff").map(["timeout", "silent_after", "max_hello_size"]);
    if (s === undefined) {
      sniffOk = false;
    } else {
      if (s.has("timeout")) {
        const t = s.get("timeout").duration(10);
        if (t === undefined) sniffOk = false;
        else sniff.timeout = t;
      }
      if (s.has("silent_after")) {
        const t = s.get("silent_after").duration(10);
        if (t === undefined) sniffOk = false;
        else sniff.silentAfter = t;
      }
      if (s.has("max_hello_size")) {
        const { min, max } = BOUNDS.maxHelloSize;
        const n = s.get("max_hello_size").size(min, max);
        if (n === undefined) sniffOk = false;
        else sniff.maxHelloSize = n;
      }
      if (sniffOk && sniff.silentAfter !== null && sniff.silentAfter >= sniff.timeout) {
        s.get("silent_after").error(
          `silent_after (${sniff.silentAfter}ms) is not shorter than the sniff timeout (${sniff.timeout}ms)`,
          "make silent_after shorter than sniff.timeout, or raise the timeout",
        );
        sniffOk = false;
      }
    }
  }
  const idleTimeout = map.has("idle_timeout")
    ? map.get("idle_timeout").duration(1000)
    : DEFAULTS.listener.idleTimeout;

  const routes: RouteConfig[] = [];
  const routesValue = map.require("routes", "a list of routes (see docs/config.md)");
  const items = routesValue?.list({ nonEmpty: true }) ?? [];
  items.forEach((item, index) => {
    const route = readRoute(name, index, item, backendNames, noBackends);
    if (route !== undefined) routes.push(route);
  });
  if (
    binds.length === 0 || !sniffOk || idleTimeout === undefined || routes.length !== items.length ||
    routes.length === 0
  ) {
    return undefined;
  }
  // Without a route that takes silent clients, waiting for silence makes no sense.
  const takesSilent = routes.some((r) =>
    r.match.protocols === null || r.match.protocols.includes("silent")
  );
  if (!takesSilent) sniff.silentAfter = null;
  return { name, binds, sniff, idleTimeout, routes, position: value.position };
}

function readRoute(
  listener: string,
  index: number,
  value: Value,
  backendNames: string[],
  noBackends: boolean,
): RouteConfig | undefined {
  const map = value.map(ROUTE_KEYS);
  if (map === undefined) return undefined;
  const actions = ACTION_KEYS.filter((k) => map.has(k));
  if (actions.length !== 1) {
    value.error(
      actions.length === 0
        ? "the route has no action"
        : `the route has ${actions.length} actions (${actions.join(", ")})`,
      `give it exactly one of ${ACTION_KEYS.map((k) => `"${k}"`).join(", ")}`,
    );
    return undefined;
  }
  const actionKey: ActionKey = actions[0];
  const routeName = map.has("name")
    ? map.get("name").string("a name for the logs, e.g. vault")
    : `${listener}#${index}`;

  const backendRef = (v: Value): string | undefined => {
    const ref = v.string("the name of a backend");
    if (ref === undefined) return undefined;
    if (!backendNames.includes(ref)) {
      const hint = closest(ref, backendNames);
      return v.error(
        `the backend "${ref}" is not defined`,
        hint
          ? `did you mean "${hint}"?`
          : noBackends
          ? "define it under `backends:`"
          : `define it under \`backends:\` or use one of ${
            backendNames.map((b) => `"${b}"`).join(", ")
          }`,
      );
    }
    return ref;
  };

  let action: RouteAction | undefined;
  const actionValue = map.get(actionKey);
  switch (actionKey) {
    case "passthrough":
    case "forward": {
      const backend = backendRef(actionValue);
      if (backend !== undefined) action = { kind: actionKey, backend };
      break;
    }
    case "redirect":
      action = readRedirect(actionValue, backendRef);
      break;
    case "reject": {
      const yes = actionValue.boolean();
      if (yes === false) {
        actionValue.error(
          "reject: false does nothing",
          "write `reject: true`, or remove the route",
        );
      } else if (yes === true) action = { kind: "reject" };
      break;
    }
  }

  const match = readMatch(map, actionKey);
  if (action === undefined || match === undefined || routeName === undefined) return undefined;
  return { name: routeName, match, action, position: value.position };
}

function readRedirect(
  value: Value,
  backendRef: (v: Value) => string | undefined,
): RedirectAction | undefined {
  const action: RedirectAction = {
    kind: "redirect",
    status: DEFAULTS.redirect.status,
    httpsPort: null,
    httpsListener: null,
    acmeBackend: null,
  };
  if (!value.missing && value.resolved() !== null && value.describe() !== "a map") {
    const scheme = value.oneOf(["https"] as const);
    return scheme === undefined ? undefined : action;
  }
  const map = value.map(["status", "https_port", "acme_challenge"]);
  if (map === undefined) return undefined;
  let ok = true;
  if (map.has("status")) {
    const status = map.get("status").integer(301, 308);
    if (status === undefined) ok = false;
    else if (status !== 301 && status !== 302 && status !== 307 && status !== 308) {
      map.get("status").error(
        `${status} is not a redirect status`,
        "use 308 (the default), 301, 302 or 307",
      );
      ok = false;
    } else action.status = status;
  }
  if (map.has("https_port")) {
    const port = map.get("https_port").integer(1, 65535);
    if (port === undefined) ok = false;
    else action.httpsPort = port;
  }
  if (map.has("acme_challenge")) {
    const backend = backendRef(map.get("acme_challenge"));
    if (backend === undefined) ok = false;
    else action.acmeBackend = backend;
  }
  return ok ? action : undefined;
}

/** The protocols an action can serve, and the default when `protocol` is left out. */
const ACTION_PROTOCOLS: Record<
  ActionKey,
  { allowed: Protocol[] | null; default: Protocol[] | null }
> = {
  passthrough: { allowed: ["tls"], default: ["tls"] },
  forward: { allowed: null, default: null },
  redirect: { allowed: ["http"], default: ["http"] },
  reject: { allowed: null, default: null },
};

function readMatch(map: MapValue, actionKey: ActionKey): RouteMatch | undefined {
  let protocols: Protocol[] | null = ACTION_PROTOCOLS[actionKey].default;
  let ok = true;
  if (map.has("protocol")) {
    const listed: Protocol[] = [];
    for (const item of map.get("protocol").list({ single: true, nonEmpty: true }) ?? []) {
      const p = item.oneOf([...PROTOCOLS, "any"] as const);
      if (p === undefined) {
        ok = false;
      } else if (p === "any") {
        if (map.get("protocol").list({ single: true })!.length > 1) {
          item.error(
            '"any" cannot be combined with other protocols',
            "write `protocol: any` alone",
          );
          ok = false;
        }
      } else if (listed.includes(p)) {
        item.error(`the protocol "${p}" is listed twice`, "remove the duplicate");
        ok = false;
      } else listed.push(p);
    }
    protocols = listed.length === 0 ? null : listed;
    const allowed = ACTION_PROTOCOLS[actionKey].allowed;
    if (ok && allowed !== null) {
      const bad = protocols === null ? ["any"] : protocols.filter((p) => !allowed.includes(p));
      if (bad.length > 0) {
        map.get("protocol").error(
          `a ${actionKey} route cannot take ${bad.map((p) => `"${p}"`).join(", ")} connections`,
          `use protocol: ${allowed.join(", ")} (or leave protocol out) for ${actionKey}`,
        );
        ok = false;
      }
    }
  }

  let sni: HostPattern[] | null = null;
  if (map.has("sni")) {
    sni = [];
    for (const item of map.get("sni").list({ single: true, nonEmpty: true }) ?? []) {
      const text = item.string('a server name such as "vault.example.tld" or "*.example.tld"');
      if (text === undefined) {
        ok = false;
        continue;
      }
      const pattern = parseHostPattern(text);
      if ("problem" in pattern) {
        item.error(`Cannot use server name "${text}": ${pattern.problem}`, pattern.fix);
        ok = false;
        continue;
      }
      if (sni.some((p) => samePattern(p, pattern))) {
        item.error(`the server name "${text}" is listed twice`, "remove the duplicate");
        ok = false;
        continue;
      }
      sni.push(pattern);
    }
  }
  let alpn: string[] | null = null;
  if (map.has("alpn")) {
    alpn = [];
    for (const item of map.get("alpn").list({ single: true, nonEmpty: true }) ?? []) {
      const text = item.string('an ALPN protocol id such as "h2", "http/1.1" or "acme-tls/1"');
      if (text === undefined) ok = false;
      else if (text.length > 255) {
        item.error("an ALPN protocol id is at most 255 bytes", "shorten it");
        ok = false;
      } else if (!alpn.includes(text)) alpn.push(text);
    }
  }
  if ((sni !== null || alpn !== null) && ok) {
    // Server names and ALPN exist only in a TLS ClientHello.
    const key = sni !== null ? "sni" : "alpn";
    if (protocols === null) {
      protocols = ["tls"];
    } else if (protocols.length !== 1 || protocols[0] !== "tls") {
      map.get(key).error(
        `${key} only applies to TLS connections, but the route takes ${protocols.join(", ")}`,
        `remove ${key}, or set protocol: tls`,
      );
      ok = false;
    }
  }
  return ok ? { protocols, sni, alpn } : undefined;
}

/**
 * Parses a route's server name: an exact name or `*.suffix`. The name is normalised the way the
 * ClientHello parser normalises what clients send: lowercase, one trailing dot removed.
 */
export function parseHostPattern(text: string): HostPattern | { problem: string; fix: string } {
  let name = text.trim().toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name === "*") {
    return {
      problem: "a lone * matches nothing in particular",
      fix: "leave sni out to match every name (a default route)",
    };
  }
  const wildcard = name.startsWith("*.");
  const rest = wildcard ? name.slice(2) : name;
  if (rest.includes("*")) {
    return {
      problem: "a wildcard is only allowed as the whole leftmost label",
      fix: 'write it as "*.example.tld" (it matches exactly one extra label)',
    };
  }
  const labels = rest.split(".");
  const labelOk = (l: string) =>
    l.length >= 1 && l.length <= 63 && /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(l);
  if (rest.length === 0 || rest.length > 253 || !labels.every(labelOk)) {
    return {
      problem: "it is not a valid DNS name",
      fix: "use letters, digits and hyphens in dot-separated labels (IDNs in their xn-- form)",
    };
  }
  if (/^[0-9.]+$/.test(rest)) {
    return {
      problem: "an IP address is never sent as a TLS server name",
      fix: "route clients without a server name with a route that leaves sni out",
    };
  }
  return wildcard ? { kind: "wildcard", suffix: rest } : { kind: "exact", name: rest };
}

function samePattern(a: HostPattern, b: HostPattern): boolean {
  return a.kind === b.kind &&
    (a.kind === "exact" ? a.name === (b as typeof a).name : a.suffix === (b as typeof a).suffix);
}

/**
 * Two listeners on one address:port cannot both bind. On Linux a `[::]` bind also takes IPv4
 * (dual stack), so it collides with any IPv4 bind on the same port.
 */
function checkDuplicateBinds(
  listeners: ListenerConfig[],
  entries: [string, Value][],
  issues: Issues,
): void {
  const seen: { listener: string; bind: HostPort }[] = [];
  const valueOf = (name: string) => entries.find(([n]) => n === name)![1];
  for (const listener of listeners) {
    for (const bind of listener.binds) {
      if (bind.port === 0) continue; // Port 0 asks the kernel for a fresh port every time.
      for (const other of seen) {
        if (other.bind.port !== bind.port) continue;
        const same = other.bind.host === bind.host;
        const dualStack = (other.bind.host === "::" && bind.kind === "ipv4") ||
          (bind.host === "::" && other.bind.kind === "ipv4") ||
          (other.bind.host === "0.0.0.0" && bind.kind === "ipv4") ||
          (bind.host === "0.0.0.0" && other.bind.kind === "ipv4") ||
          (other.bind.host === "::" && bind.kind === "ipv6") ||
          (bind.host === "::" && other.bind.kind === "ipv6");
        if (!same && !dualStack) continue;
        const otherName = other.listener === listener.name
          ? "this listener"
          : `listener "${other.listener}"`;
        issues.add(
          "error",
          valueOf(listener.name).position,
          `listeners.${listener.name}.bind`,
          same
            ? `${formatHostPort(bind)} is bound twice (also by ${otherName})`
            : `${formatHostPort(bind)} overlaps ${formatHostPort(other.bind)} of ${otherName}: ` +
              (other.bind.host === "::" || bind.host === "::"
                ? "a [::] bind also accepts IPv4 on Linux"
                : "0.0.0.0 already takes every IPv4 address"),
          same
            ? "bind each address:port in one listener only"
            : "keep only the wider bind, or bind specific addresses in both",
        );
      }
      seen.push({ listener: listener.name, bind });
    }
  }
}

/**
 * A redirect without `https_port` sends clients to the port of the listener that takes TLS, so
 * the example's 8080 → 8443 redirect needs no extra setting. With several such listeners on
 * different ports, the user must say which.
 */
function resolveRedirectPorts(listeners: ListenerConfig[], entries: [string, Value][]): void {
  // A catch-all forward also takes TLS, but only routes that name TLS make a listener https.
  const tlsListeners = listeners.filter((l) =>
    l.routes.some((r) => r.match.protocols !== null && r.match.protocols.includes("tls"))
  );
  for (const listener of listeners) {
    listener.routes.forEach((route, index) => {
      const action = route.action;
      if (action.kind !== "redirect" || action.httpsPort !== null) return;
      if (tlsListeners.includes(listener)) {
        action.httpsListener = listener.name;
        return;
      }
      const ports = new Set(tlsListeners.map((l) => l.binds[0].port));
      if (tlsListeners.length === 0) return; // Plain https on 443: no port in Location.
      if (ports.size === 1 && tlsListeners.length === 1) {
        action.httpsListener = tlsListeners[0].name;
        return;
      }
      if (ports.size === 1 && !ports.has(0)) {
        action.httpsPort = [...ports][0];
        return;
      }
      const value = entries.find(([n]) => n === listener.name)![1];
      value.issues.add(
        "error",
        route.position,
        `listeners.${listener.name}.routes[${index}].redirect`,
        `the redirect cannot tell which https port to send clients to: listeners ${
          tlsListeners.map((l) => `"${l.name}"`).join(", ")
        } take TLS on different ports`,
        "set redirect: { https_port: 443 } (or the port clients should use)",
      );
    });
  }
}

function warnUnusedBackends(
  backends: Map<string, BackendConfig>,
  listeners: ListenerConfig[],
  issues: Issues,
): void {
  const used = new Set<string>();
  for (const l of listeners) {
    for (const r of l.routes) {
      if ("backend" in r.action) used.add(r.action.backend);
      if (r.action.kind === "redirect" && r.action.acmeBackend) used.add(r.action.acmeBackend);
    }
  }
  for (const b of backends.values()) {
    if (!used.has(b.name)) {
      issues.add(
        "warning",
        b.position,
        `backends.${b.name}`,
        `the backend "${b.name}" is not used by any route`,
        "route to it, or remove it",
      );
    }
  }
}
