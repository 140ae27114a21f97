/**
 * YAML text → validated {@link Config}. Pure: the caller supplies file names and texts, so
 * `edgemux check`, reload and the tests all run exactly this code.
 *
 * @module
 */

import {
  formatHostPort,
  type HostPort,
  isHostname,
  isIPv4,
  isIPv6,
  isWildcardHost,
  parseHostPort,
} from "./address.ts";
import {
  closest,
  entryPath,
  Issues,
  type MapValue,
  readYaml,
  Source,
  type Value,
} from "./_reader.ts";
import { BOUNDS, DEFAULTS } from "./defaults.ts";
import { formatDuration } from "./units.ts";
import { ConfigError, type ConfigIssue, formatPosition, type SourcePosition } from "./errors.ts";
import { dirname, resolve as resolvePath } from "node:path";
import { domainToASCII } from "node:url";
import { CidrSet } from "../routing/cidr.ts";
import { normalizePath, PATH_NORMALIZATIONS, pathRefusal } from "../routing/path.ts";
import { formatHostPattern } from "../routing/hosts.ts";
import type {
  AcmeChallengeType,
  AcmeConfig,
  AcmeKeyType,
  AdminConfig,
  BackendConfig,
  BackendTlsConfig,
  CertificatesConfig,
  Config,
  HeaderOps,
  HealthCheckConfig,
  HostPattern,
  HttpConfig,
  HttpRouteConfig,
  LimitsConfig,
  ListenerConfig,
  LogConfig,
  PassiveHealthConfig,
  PathMatch,
  Protocol,
  ProxyProtocolAccept,
  RedirectAction,
  RouteAction,
  RouteConfig,
  RouteMatch,
  ServerConfig,
  TerminateAction,
} from "./types.ts";
import { assertNever, isTerminating, PROTOCOLS } from "./types.ts";
import { checkListenerRoutes } from "./_route_checks.ts";

/**
 * A config object while this module builds it: its fields writable (and its arrays growable).
 * What parseConfig returns is read-only (config/types.ts); nothing writes to it afterwards.
 */
type Draft<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer U)[] ? U[] : T[K] };

/** One config file's name and text. */
export interface ConfigSource {
  /** The file's path, used in every message about it. */
  file: string;
  /** The file's YAML text. */
  text: string;
}

/** A usable config, with the warnings found while reading it. */
export interface ParsedConfig {
  /** The validated config, with every default filled in. */
  config: Config;
  /**
   * Problems that do not stop the config from running, such as an unused backend or a route
   * that can never match.
   */
  warnings: ConfigIssue[];
}

const ACTION_KEYS = [
  "passthrough",
  "edge",
  "reencrypt",
  "forward",
  "redirect",
  "reject",
] as const;
type ActionKey = typeof ACTION_KEYS[number];

/** Every key the config accepts, by where it may appear (the schema test compares against it). */
export const CONFIG_KEYS = Object.freeze(
  {
    top: [
      "version",
      "log",
      "shutdown_timeout",
      "workers",
      "watch_config",
      "admin",
      "http",
      "limits",
      "certificates",
      "backends",
      "listeners",
    ],
    log: ["level", "format", "access"],
    admin: ["bind", "hosts", "token", "token_file"],
    http: [
      "request_head_timeout",
      "keepalive_timeout",
      "max_head_size",
      "max_headers",
      "trusted_proxies",
      "path_normalization",
    ],
    limits: ["max_connections", "per_client"],
    perClient: ["max_connections", "rate", "burst"],
    certificates: ["directory", "files", "default", "development", "watch_interval", "acme"],
    acme: [
      "email",
      "directory",
      "ca",
      "challenges",
      "key_type",
      "state_directory",
      "retry_interval",
    ],
    certificateFile: ["cert", "key"],
    development: ["directory"],
    backend: [
      "servers",
      "balance",
      "retries",
      "max_connections_per_client",
      "connect_timeout",
      "response_timeout",
      "proxy_protocol",
      "tls",
      "health_check",
      "passive_health",
    ],
    server: ["address", "weight", "backup", "max_connections"],
    backendTls: ["ca", "server_name", "cert", "key"],
    healthCheck: [
      "type",
      "interval",
      "timeout",
      "rise",
      "fall",
      "method",
      "path",
      "host",
      "expect_status",
      "ca",
      "server_name",
    ],
    passiveHealth: ["failures", "backoff", "on_5xx"],
    listener: ["bind", "sniff", "idle_timeout", "max_connections", "proxy_protocol", "routes"],
    listenerProxyProtocol: ["accept_from", "timeout"],
    sniff: ["timeout", "silent_after", "max_hello_size"],
    route: ["name", "protocol", "sni", "alpn", ...ACTION_KEYS],
    redirect: ["status", "https_port", "acme_challenge"],
    terminate: ["http", "tcp"],
    httpRoute: [
      "name",
      "host",
      "path",
      "path_prefix",
      "backend",
      "redirect",
      "strip_prefix",
      "rewrite_prefix",
      "request_headers",
      "response_headers",
    ],
    httpRedirect: ["to", "status"],
    headerOps: ["set", "add", "remove"],
  } as const,
);

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
    const top = root.map(CONFIG_KEYS.top);
    if (top === undefined) continue;
    const version = top.require("version", "1");
    if (version !== undefined && version.describe() !== "1") {
      version.error(
        `edgemux reads config version 1, and this file says version ${version.describe()}`,
        "set `version: 1` (check the config reference for what changed)",
      );
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
  // Every file read as a map: check the rest even when something (a missing or wrong
  // `version`, an unknown top-level key) is already wrong, so one run lists every problem. A
  // file that is not YAML at all is left out of the build, and then so is everything else: the
  // settings it holds would be missing and reported wrongly.
  const config = tops.length === sources.length && sources.length > 0
    ? buildConfig(tops, sources.map((s) => s.file), issues)
    : undefined;
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
        `"${key}" is already set in ${formatPosition(found.position)}`,
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
        value.issues.add(
          "error",
          value.keyPosition,
          value.path,
          `the ${what} "${name}" is already defined at ${formatPosition(before.keyPosition)}`,
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

function buildConfig(tops: MapValue[], files: string[], issues: Issues): Config | undefined {
  const log = readLog(single(tops, "log"));
  const shutdown = single(tops, "shutdown_timeout");
  const shutdownTimeout = shutdown === undefined ? DEFAULTS.shutdownTimeout : shutdown.duration();
  const http = readHttp(single(tops, "http"));
  const limits = readLimits(single(tops, "limits"));
  const adminValue = single(tops, "admin");
  const admin = adminValue === undefined ? null : readAdmin(adminValue);
  const workersValue = single(tops, "workers");
  const workers = workersValue === undefined ? 1 : readWorkers(workersValue);
  const watchValue = single(tops, "watch_config");
  const watchConfig = watchValue === undefined ? false : watchValue.boolean();
  const certificatesValue = single(tops, "certificates");
  const certificates = certificatesValue === undefined ? null : readCertificates(certificatesValue);

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
    const listener = readListener(name, value, backendNames);
    if (listener !== undefined) listeners.push(listener);
  }
  if (
    issues.hasErrors || log === undefined || shutdownTimeout === undefined || http === undefined ||
    certificates === undefined || limits === undefined || admin === undefined ||
    workers === undefined || watchConfig === undefined
  ) {
    return undefined;
  }

  checkTerminationBackends(listeners, backends, issues);
  applyPerClientDefaults(listeners, backends);
  if (certificates === null) {
    const terminating = listeners.flatMap((l) => l.routes.filter((r) => isTerminating(r.action)));
    if (terminating.length > 0) {
      issues.add(
        "error",
        terminating[0].position,
        "certificates",
        `route "${terminating[0].name}" terminates TLS, but no certificates are configured`,
        "add `certificates: { directory: /etc/edgemux/certs }` (or `development: true` to try " +
          "edgemux with a self-signed certificate)",
      );
    }
  }
  checkDuplicateBinds(listeners, issues);
  resolveRedirectPorts(listeners, issues);
  for (const listener of listeners) checkListenerRoutes(listener, issues);
  warnUnusedBackends(backends, listeners, issues);
  if (issues.hasErrors) return undefined;
  if (admin !== null) checkAdminBind(admin, listeners, issues);
  return {
    files,
    log,
    shutdownTimeout,
    http,
    limits,
    admin,
    workers,
    watchConfig,
    certificates,
    backends,
    listeners,
  };
}

function readLog(value: Value | undefined): LogConfig | undefined {
  const log: Draft<LogConfig> = { ...DEFAULTS.log };
  if (value === undefined) return log;
  const map = value.map(CONFIG_KEYS.log);
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
  const http: Draft<HttpConfig> = { ...DEFAULTS.http };
  if (value === undefined) return http;
  const map = value.map(CONFIG_KEYS.http);
  if (map === undefined) return undefined;
  let ok = true;
  const set = <K extends keyof HttpConfig>(key: K, v: Draft<HttpConfig>[K] | undefined) => {
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
  if (map.has("trusted_proxies")) {
    const list: string[] = [];
    for (const item of map.get("trusted_proxies").list({ single: true }) ?? []) {
      const text = item.string('an address or CIDR, e.g. "10.0.0.0/8" or "::1"');
      if (text === undefined) {
        ok = false;
        continue;
      }
      try {
        new CidrSet([text.trim()]);
        list.push(text.trim());
      } catch (e) {
        item.error(
          (e as Error).message,
          'write an address ("192.0.2.7") or a network ("10.0.0.0/8")',
        );
        ok = false;
      }
    }
    http.trustedProxies = list;
  }
  if (map.has("path_normalization")) {
    set("pathNormalization", map.get("path_normalization").oneOf(PATH_NORMALIZATIONS));
  }
  return ok ? http : undefined;
}

function readBackend(name: string, value: Value): BackendConfig | undefined {
  const map = value.map(CONFIG_KEYS.backend);
  if (map === undefined) return undefined;
  const serversValue = map.require("servers", '["127.0.0.1:8080"]');
  const servers: ServerConfig[] = [];
  for (const item of serversValue?.list({ single: true, nonEmpty: true }) ?? []) {
    const server = readServer(item);
    if (server === undefined) continue;
    if (servers.some((s) => s.label === server.label)) {
      item.error(`the server ${server.label} is listed twice`, "remove the duplicate");
      continue;
    }
    servers.push(server);
  }
  if (servers.length > 0 && servers.every((s) => s.backup)) {
    serversValue!.error(
      "every server is a backup, so none would take traffic while all are up",
      "mark at least one server without `backup: true`",
    );
  }
  const connectTimeout = map.has("connect_timeout")
    ? map.get("connect_timeout").duration(1)
    : DEFAULTS.backend.connectTimeout;
  const proxyProtocol = map.has("proxy_protocol")
    ? map.get("proxy_protocol").oneOf(["off", "v1", "v2"] as const)
    : DEFAULTS.backend.proxyProtocol;
  const responseTimeout = map.has("response_timeout")
    ? map.get("response_timeout").duration(1)
    : DEFAULTS.backend.responseTimeout;
  const tls = map.has("tls") ? readBackendTls(map.get("tls")) : null;
  const balance = map.has("balance")
    ? map.get("balance").oneOf(["round_robin", "least_conn", "random", "first"] as const)
    : DEFAULTS.backend.balance;
  const retries = map.has("retries")
    ? map.get("retries").integer(0, 100)
    : DEFAULTS.backend.retries;
  const healthCheck = map.has("health_check") ? readHealthCheck(map.get("health_check")) : null;
  const passive = readPassiveHealth(map);
  // Unset means "the default for how the backend is used", filled in once the routes are read.
  const perClient = map.has("max_connections_per_client")
    ? readPerClientCap(map.get("max_connections_per_client"))
    : UNSET_PER_CLIENT;
  if (
    connectTimeout === undefined || proxyProtocol === undefined || servers.length === 0 ||
    responseTimeout === undefined || tls === undefined || balance === undefined ||
    retries === undefined || healthCheck === undefined || passive === undefined ||
    perClient === undefined
  ) {
    return undefined;
  }
  return {
    name,
    servers,
    connectTimeout,
    responseTimeout,
    proxyProtocol,
    tls,
    balance,
    retries,
    maxConnectionsPerClient: perClient,
    healthCheck,
    passive,
    position: value.position,
  };
}

/** Marks a backend whose `max_connections_per_client` was not written (see applyPerClientDefaults). */
const UNSET_PER_CLIENT = -1;

/** `max_connections_per_client`: a whole number, or `none` to lift the cap. */
function readPerClientCap(value: Value): number | null | undefined {
  const text = value.describe();
  if (text === '"none"') return null;
  if (text.startsWith('"')) {
    return value.error(
      `${text} is neither a whole number nor none`,
      "write a whole number from 1 to 1000000, or none for no cap",
    );
  }
  return value.integer(1, 1_000_000);
}

/**
 * Fills in `max_connections_per_client` where it was not written: a backend that a `forward`
 * route uses gets {@link DEFAULTS}.backend.forwardMaxConnectionsPerClient (an SSH server or
 * another server-speaks-first service, which a client can hold without sending a byte); every
 * other backend gets no cap.
 */
function applyPerClientDefaults(listeners: ListenerConfig[], backends: Map<string, BackendConfig>) {
  const forwarded = new Set<string>();
  for (const l of listeners) {
    for (const r of l.routes) if (r.action.kind === "forward") forwarded.add(r.action.backend);
  }
  for (const b of backends.values()) {
    if (b.maxConnectionsPerClient !== UNSET_PER_CLIENT) continue;
    (b as Draft<BackendConfig>).maxConnectionsPerClient = forwarded.has(b.name)
      ? DEFAULTS.backend.forwardMaxConnectionsPerClient
      : null;
  }
}

function readServer(item: Value): ServerConfig | undefined {
  const example = '"host:port", e.g. "127.0.0.1:8200"';
  let addressValue = item;
  let weight: number | undefined = DEFAULTS.backend.weight;
  let backup: boolean | undefined = false;
  let maxConnections: number | null | undefined = null;
  if (item.describe() === "a map") {
    const m = item.map(CONFIG_KEYS.server);
    if (m === undefined) return undefined;
    const a = m.require("address", '"127.0.0.1:8080"');
    if (a === undefined) return undefined;
    addressValue = a;
    if (m.has("weight")) weight = m.get("weight").integer(1, 1000);
    if (m.has("backup")) backup = m.get("backup").boolean();
    if (m.has("max_connections")) maxConnections = m.get("max_connections").integer(1, 1_000_000);
  }
  const text = addressValue.string(example);
  if (text === undefined) return undefined;
  const address = parseHostPort(text.trim(), { bindOnly: false, allowPortZero: false });
  if ("problem" in address) {
    addressValue.error(`server address "${text}": ${address.problem}`, address.fix);
    return undefined;
  }
  if (weight === undefined || backup === undefined || maxConnections === undefined) {
    return undefined;
  }
  return { address, label: formatHostPort(address), weight, backup, maxConnections };
}

function readHealthCheck(value: Value): HealthCheckConfig | undefined {
  const d = DEFAULTS.backend.healthCheck;
  const map = value.map(CONFIG_KEYS.healthCheck);
  if (map === undefined) return undefined;
  let ok = true;
  const kind = map.has("type") ? map.get("type").oneOf(["tcp", "tls", "http"] as const) : "tcp";
  const interval = map.has("interval") ? map.get("interval").duration(100) : d.interval;
  const timeout = map.has("timeout") ? map.get("timeout").duration(10) : d.timeout;
  const rise = map.has("rise") ? map.get("rise").integer(1, 100) : d.rise;
  const fall = map.has("fall") ? map.get("fall").integer(1, 100) : d.fall;
  if (
    kind === undefined || interval === undefined || timeout === undefined || rise === undefined ||
    fall === undefined
  ) {
    return undefined;
  }
  if (timeout >= interval) {
    // A value the user did not write is named as a default: the fix is then to write it.
    if (!map.has("timeout")) {
      map.get("interval").error(
        `the check interval (${formatDuration(interval)}) is not longer than the check timeout, ` +
          `which defaults to ${formatDuration(timeout)}`,
        `timeout defaults to ${formatDuration(timeout)}; set it below interval ` +
          `(e.g. timeout: ${formatDuration(Math.max(10, Math.floor(interval / 2)))}), ` +
          `or make interval longer than ${formatDuration(timeout)}`,
      );
    } else if (!map.has("interval")) {
      map.get("timeout").error(
        `the check timeout (${formatDuration(timeout)}) is not shorter than the check ` +
          `interval, which defaults to ${formatDuration(interval)}`,
        `interval defaults to ${formatDuration(interval)}; set timeout below it, or set an ` +
          `interval longer than ${formatDuration(timeout)}`,
      );
    } else {
      map.get("timeout").error(
        `the check timeout (${formatDuration(timeout)}) is not shorter than its interval (${
          formatDuration(interval)
        })`,
        "make timeout shorter than interval, so checks never overlap",
      );
    }
    ok = false;
  }
  const httpKeys = ["method", "path", "host", "expect_status"] as const;
  let http: HealthCheckConfig["http"] = null;
  if (kind === "http") {
    const method = map.has("method")
      ? map.get("method").oneOf(["GET", "HEAD", "OPTIONS"] as const)
      : d.httpMethod;
    let path: string | undefined = d.httpPath;
    if (map.has("path")) {
      path = map.get("path").string('a path such as "/healthz"');
      if (path !== undefined && (!path.startsWith("/") || hasControl(path, true))) {
        map.get("path").error(`"${path}" is not a request path`, 'write it like "/healthz"');
        path = undefined;
      }
    }
    let host: string | null | undefined = null;
    if (map.has("host")) {
      host = map.get("host").string("the Host header to send, e.g. app.internal");
      if (host !== undefined && !/^[A-Za-z0-9.:\[\]_-]+$/.test(host)) {
        map.get("host").error(
          `"${host}" is not a host`,
          "write a host name, optionally with :port",
        );
        host = undefined;
      }
    }
    const expect = map.has("expect_status") ? readStatusRange(map.get("expect_status")) : d.expect;
    if (method === undefined || path === undefined || host === undefined || expect === undefined) {
      ok = false;
    } else http = { method, path, host, expect };
  } else {
    for (const k of httpKeys) {
      if (map.has(k)) {
        map.get(k).error(`${k} applies to http checks only`, `set type: http, or remove ${k}`);
        ok = false;
      }
    }
  }
  let tls: HealthCheckConfig["tls"] = null;
  if (map.has("ca") || map.has("server_name") || kind === "tls") {
    if (kind === "tcp") {
      map.get(map.has("ca") ? "ca" : "server_name").error(
        "ca and server_name apply to tls and http checks",
        "set type: tls (or http), or remove them",
      );
      ok = false;
    } else {
      const caFile = map.has("ca")
        ? pathValue(map.get("ca"), "a PEM file of the server's CA")
        : null;
      const serverName = map.has("server_name")
        ? map.get("server_name").string("a server name")
        : null;
      if (caFile === undefined || serverName === undefined) ok = false;
      else tls = { caFile, serverName };
    }
  }
  return ok ? { kind, interval, timeout, rise, fall, http, tls } : undefined;
}

/** `200`, `"200-399"` or `"2xx"`. */
function readStatusRange(v: Value): [number, number] | undefined {
  const raw = v.describe();
  const text = raw.startsWith('"') ? JSON.parse(raw) as string : raw;
  let m = /^(\d{3})$/.exec(text);
  if (m) return [Number(m[1]), Number(m[1])];
  m = /^(\d{3})-(\d{3})$/.exec(text);
  if (m && Number(m[1]) <= Number(m[2])) return [Number(m[1]), Number(m[2])];
  m = /^([1-5])xx$/.exec(text);
  if (m) return [Number(m[1]) * 100, Number(m[1]) * 100 + 99];
  return v.error(
    `${raw} is not a status or status range`,
    'write a status (200), a range ("200-399") or a class ("2xx")',
  );
}

function readPassiveHealth(map: MapValue): PassiveHealthConfig | undefined {
  const d = DEFAULTS.backend.passive;
  if (!map.has("passive_health")) return { ...d };
  const m = map.get("passive_health").map(CONFIG_KEYS.passiveHealth);
  if (m === undefined) return undefined;
  const failures = m.has("failures") ? m.get("failures").integer(0, 1000) : d.failures;
  const backoff = m.has("backoff") ? m.get("backoff").duration(100) : d.backoff;
  const on5xx = m.has("on_5xx") ? m.get("on_5xx").boolean() : d.on5xx;
  if (failures === undefined || backoff === undefined || on5xx === undefined) return undefined;
  return { failures, backoff, on5xx };
}

function readAdmin(value: Value): AdminConfig | undefined {
  const map = value.map(CONFIG_KEYS.admin);
  const bindValue = map?.require("bind", '"127.0.0.1:9901"');
  const text = bindValue?.string('"127.0.0.1:9901"');
  if (bindValue === undefined || text === undefined) return undefined;
  const bind = parseHostPort(text.trim(), { bindOnly: true, allowPortZero: true });
  if ("problem" in bind) {
    return bindValue.error(`admin address "${text}": ${bind.problem}`, bind.fix);
  }
  const loopback = bind.host === "::1" || bind.host.startsWith("127.");
  let ok = true;
  const hosts: string[] = [];
  if (map!.has("hosts")) {
    for (const item of map!.get("hosts").list({ single: true, nonEmpty: true }) ?? []) {
      const name = item.string('a host name such as "admin.example.internal"');
      if (name === undefined) {
        ok = false;
        continue;
      }
      const normal = name.trim().toLowerCase().replace(/\.$/, "");
      if (!isHostname(normal) && !isIPv4(normal) && !isIPv6(normal.replace(/^\[|\]$/g, ""))) {
        item.error(
          `"${name}" is not a host name or IP address`,
          'write the name clients use in the URL, without port or path, e.g. "admin.example.internal"',
        );
        ok = false;
      } else if (!hosts.includes(normal)) hosts.push(normal.replace(/^\[|\]$/g, ""));
    }
  }
  let token: string | null = null;
  let tokenFile: string | null = null;
  if (map!.has("token") && map!.has("token_file")) {
    map!.get("token_file").error(
      "admin takes either token or token_file, not both",
      "keep one of them (token_file keeps the secret out of the config)",
    );
    ok = false;
  } else if (map!.has("token")) {
    const v = map!.get("token");
    const text = v.string("a random string of at least 16 characters");
    const problem = text === undefined ? null : adminTokenProblem(text);
    if (text === undefined) ok = false;
    else if (problem !== null) {
      v.error(`admin.token ${problem}`, "generate one with: openssl rand -hex 32");
      ok = false;
    } else token = text;
  } else if (map!.has("token_file")) {
    const p = pathValue(map!.get("token_file"), "the path of a file holding the token");
    if (p === undefined) ok = false;
    else tokenFile = p;
  }
  if (!loopback && token === null && tokenFile === null) {
    bindValue.warn(
      `the admin listener on ${text} is reachable from other hosts, and it shows the whole topology`,
      'bind it to loopback ("127.0.0.1:9901") and reach it through an SSH tunnel or a VPN, ' +
        "or set admin.token_file",
    );
  }
  if (!ok) return undefined;
  return { bind, hosts, token, tokenFile, position: bindValue.position };
}

/**
 * Why `token` cannot be an admin bearer token, or null: at least 16 characters (guessing must
 * be hopeless), and only the characters RFC 6750 §2.1 allows in a bearer token (b64token).
 */
export function adminTokenProblem(token: string): string | null {
  if (token.length < 16) return `is ${token.length} characters long; it needs at least 16`;
  if (!/^[A-Za-z0-9\-._~+\/]+=*$/.test(token)) {
    return "may hold only letters, digits and - . _ ~ + / (and = at the end), as RFC 6750 allows";
  }
  return null;
}

/** `workers: 4` or `workers: auto` (one per CPU). */
function readWorkers(value: Value): number | undefined {
  const shown = value.describe();
  if (shown === '"auto"') return Math.max(1, navigator.hardwareConcurrency);
  if (shown.startsWith('"')) {
    return value.error(`${shown} is not a number of workers`, "write a number such as 2, or auto");
  }
  return value.integer(1, 256);
}

function checkAdminBind(admin: AdminConfig, listeners: ListenerConfig[], issues: Issues): void {
  if (admin.bind.port === 0) return;
  for (const l of listeners) {
    for (const b of l.binds) {
      if (b.port !== admin.bind.port) continue;
      if (
        b.host === admin.bind.host || isWildcardHost(b.host) || isWildcardHost(admin.bind.host)
      ) {
        issues.add(
          "error",
          admin.position,
          "admin.bind",
          `the admin address ${formatHostPort(admin.bind)} is also bound by listener "${l.name}"`,
          "give the admin listener a port of its own",
        );
      }
    }
  }
}

function readLimits(value: Value | undefined): LimitsConfig | undefined {
  const d = DEFAULTS.limits;
  const out: Draft<LimitsConfig> = {
    maxConnections: d.maxConnections,
    perClientConnections: d.perClientConnections,
    perClientRate: d.perClientRate,
    perClientBurst: 0,
  };
  let ok = true;
  if (value !== undefined) {
    const map = value.map(CONFIG_KEYS.limits);
    if (map === undefined) return undefined;
    if (map.has("max_connections")) {
      const n = map.get("max_connections").integer(1, 10_000_000);
      if (n === undefined) ok = false;
      else out.maxConnections = n;
    }
    if (map.has("per_client")) {
      const pc = map.get("per_client").map(CONFIG_KEYS.perClient);
      if (pc === undefined) return undefined;
      if (pc.has("max_connections")) {
        const n = pc.get("max_connections").integer(1, 10_000_000);
        if (n === undefined) ok = false;
        else out.perClientConnections = n;
      }
      if (pc.has("rate")) {
        const n = pc.get("rate").integer(1, 1_000_000);
        if (n === undefined) ok = false;
        else out.perClientRate = n;
      }
      if (pc.has("burst")) {
        if (!pc.has("rate")) {
          pc.get("burst").error(
            "burst needs a rate",
            "set per_client.rate (new connections per second)",
          );
          ok = false;
        } else {
          const n = pc.get("burst").integer(1, 10_000_000);
          if (n === undefined) ok = false;
          else out.perClientBurst = n;
        }
      }
    }
  }
  if (out.perClientRate !== null && out.perClientBurst === 0) {
    out.perClientBurst = out.perClientRate * d.perClientBurstFactor;
  }
  return ok ? out : undefined;
}

/**
 * YAML 1.2 reads `yes`, `no`, `on` and `off` as text, not booleans; where a boolean (or a map)
 * is expected, say so instead of a puzzling type error. True when it reported one.
 */
function yesNo(v: Value): boolean {
  const d = v.describe();
  const word = d.toLowerCase();
  if (!['"yes"', '"no"', '"on"', '"off"'].includes(word)) return false;
  const yes = word === '"yes"' || word === '"on"';
  v.error(
    `${d} is text in YAML 1.2, not a boolean`,
    `write ${yes ? "true" : "false"} (without quotes)`,
  );
  return true;
}

/** A file path from the config, resolved against the directory of the file it is written in. */
function pathValue(v: Value, example: string): string | undefined {
  const text = v.string(example);
  if (text === undefined) return undefined;
  return besideConfig(v, text.trim());
}

/** `path` resolved against the directory of the config file `v` is written in. */
function besideConfig(v: Value, path: string): string {
  return resolvePath(dirname(resolvePath(v.source.file)), path);
}

function readBackendTls(value: Value): BackendTlsConfig | undefined {
  // `tls: true` is the common case: system roots, the server's own host name.
  if (yesNo(value)) return undefined;
  if (value.describe() === "false") {
    return value.error(
      "tls: false is the same as leaving tls out",
      "remove the tls line for a plain-text backend",
    );
  }
  if (value.describe() === "true") {
    return { caFile: null, serverName: null, certFile: null, keyFile: null };
  }
  const map = value.map(CONFIG_KEYS.backendTls);
  if (map === undefined) return undefined;
  const tls: Draft<BackendTlsConfig> = {
    caFile: null,
    serverName: null,
    certFile: null,
    keyFile: null,
  };
  let ok = true;
  if (map.has("ca")) {
    const p = pathValue(map.get("ca"), "the path of a PEM file with the backend's CA");
    if (p === undefined) ok = false;
    else tls.caFile = p;
  }
  if (map.has("server_name")) {
    const name = map.get("server_name").string("the name in the backend's certificate");
    if (name === undefined) ok = false;
    else {
      const pattern = parseHostPattern(name);
      if ("problem" in pattern || pattern.kind !== "exact") {
        map.get("server_name").error(
          `"${name}" is not a server name`,
          "write the DNS name the backend's certificate carries, e.g. vault.internal",
        );
        ok = false;
      } else tls.serverName = pattern.name;
    }
  }
  if (map.has("cert") !== map.has("key")) {
    map.self.error(
      "a client certificate needs both cert and key",
      "set both `cert:` and `key:`, or neither",
    );
    ok = false;
  } else if (map.has("cert")) {
    const cert = pathValue(map.get("cert"), "the path of the client certificate (PEM)");
    const key = pathValue(map.get("key"), "the path of the client key (PEM)");
    if (cert === undefined || key === undefined) ok = false;
    else {
      tls.certFile = cert;
      tls.keyFile = key;
    }
  }
  return ok ? tls : undefined;
}

function readCertificates(value: Value): CertificatesConfig | undefined {
  const map = value.map(CONFIG_KEYS.certificates);
  if (map === undefined) return undefined;
  const out: Draft<CertificatesConfig> = {
    directories: [],
    files: [],
    defaultName: null,
    development: null,
    watchInterval: DEFAULTS.certificates.watchInterval,
    acme: null,
  };
  let ok = true;
  if (map.has("directory")) {
    for (const item of map.get("directory").list({ single: true, nonEmpty: true }) ?? []) {
      const p = pathValue(item, "a directory of certificates, e.g. /etc/edgemux/certs");
      if (p === undefined) ok = false;
      else out.directories.push(p);
    }
  }
  if (map.has("files")) {
    for (const item of map.get("files").list({ nonEmpty: true }) ?? []) {
      const pair = item.map(CONFIG_KEYS.certificateFile);
      const certValue = pair?.require("cert", "fullchain.pem");
      const cert = certValue && pathValue(certValue, "the certificate chain file (PEM)");
      // The key may sit in the same file as the chain.
      const key = pair?.has("key")
        ? pathValue(pair.get("key"), "the private key file (PEM)")
        : cert;
      if (cert === undefined || key === undefined) ok = false;
      else out.files.push({ cert, key });
    }
  }
  if (map.has("default")) {
    const name = map.get("default").string("a server name covered by one of the certificates");
    const pattern = name === undefined ? undefined : parseHostPattern(name);
    if (pattern === undefined || "problem" in pattern || pattern.kind !== "exact") {
      if (pattern !== undefined) {
        map.get("default").error(
          `"${name}" is not a server name`,
          "name a host one of the certificates covers, e.g. example.tld",
        );
      }
      ok = false;
    } else out.defaultName = pattern.name;
  }
  if (map.has("development")) {
    const dev = map.get("development");
    const enabled = dev.describe() === "true" || dev.describe() === "false"
      ? dev.boolean()
      : yesNo(dev)
      ? undefined
      : null;
    if (enabled === true) {
      out.development = {
        directory: besideConfig(dev, DEFAULTS.certificates.developmentDirectory),
      };
    } else if (enabled === null) {
      const devMap = dev.map(CONFIG_KEYS.development);
      // `development: {}` is the same as `development: true`.
      const dir = devMap === undefined
        ? undefined
        : devMap.has("directory")
        ? pathValue(devMap.get("directory"), "a directory for development certificates")
        : besideConfig(dev, DEFAULTS.certificates.developmentDirectory);
      if (dir === undefined) ok = false;
      else out.development = { directory: dir };
    } else if (enabled === undefined) {
      ok = false;
    }
  }
  if (map.has("watch_interval")) {
    const t = map.get("watch_interval").duration(0);
    if (t === undefined) ok = false;
    else out.watchInterval = t;
  }
  if (map.has("acme")) {
    const acme = readAcme(map.get("acme"));
    if (acme === undefined) ok = false;
    else out.acme = acme;
  }
  if (
    ok && out.directories.length === 0 && out.files.length === 0 && out.development === null &&
    out.acme === null
  ) {
    value.error(
      "no certificate source is configured",
      "add `directory:` (a folder of certificates), `files:` (explicit pairs), `acme:` " +
        "(certificates from an ACME CA such as Let's Encrypt), or " +
        "`development: true` (self-signed, for trying edgemux out)",
    );
    ok = false;
  }
  return ok ? out : undefined;
}

const ACME_CHALLENGES = ["http-01", "tls-alpn-01"] as const;
const ACME_KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-4096"] as const;

function readAcme(value: Value): AcmeConfig | undefined {
  const map = value.map(CONFIG_KEYS.acme);
  if (map === undefined) return undefined;
  let ok = true;
  const emailValue = map.require("email", "admin@example.tld");
  const email = emailValue?.string("an e-mail address, e.g. admin@example.tld");
  if (email !== undefined && !/^[^\s@:]+@[^\s@]+\.[^\s@]+$/.test(email.trim())) {
    emailValue!.error(
      `"${email}" is not an e-mail address`,
      "write the address the CA may write to about the account, e.g. admin@example.tld",
    );
    ok = false;
  } else if (email === undefined) ok = false;
  let directoryUrl: string = DEFAULTS.acme.directory;
  if (map.has("directory")) {
    const v = map.get("directory");
    const text = v.string("the CA's directory URL, e.g. " + DEFAULTS.acme.directory);
    let url: URL | null = null;
    try {
      url = text === undefined ? null : new URL(text.trim());
    } catch {
      url = null;
    }
    if (url === null || url.protocol !== "https:") {
      if (text !== undefined) {
        v.error(
          `"${text}" is not an https URL`,
          `write the CA's directory URL, e.g. ${DEFAULTS.acme.directory} (ACME requires https)`,
        );
      }
      ok = false;
    } else directoryUrl = url.href;
  }
  let caFile: string | null = null;
  if (map.has("ca")) {
    const p = pathValue(map.get("ca"), "a PEM file with the CA of the ACME server");
    if (p === undefined) ok = false;
    else caFile = p;
  }
  const challenges: AcmeChallengeType[] = [...DEFAULTS.acme.challenges];
  if (map.has("challenges")) {
    challenges.length = 0;
    for (const item of map.get("challenges").list({ single: true, nonEmpty: true }) ?? []) {
      const c = item.oneOf(ACME_CHALLENGES);
      if (c === undefined) ok = false;
      else if (challenges.includes(c)) {
        item.error(`"${c}" is listed twice`, "list each challenge type once");
        ok = false;
      } else challenges.push(c);
    }
    if (challenges.length === 0) ok = false;
  }
  let keyType: AcmeKeyType = DEFAULTS.acme.keyType;
  if (map.has("key_type")) {
    const k = map.get("key_type").oneOf(ACME_KEY_TYPES);
    if (k === undefined) ok = false;
    else keyType = k;
  }
  let stateDirectory: string = DEFAULTS.acme.stateDirectory;
  if (map.has("state_directory")) {
    const p = pathValue(map.get("state_directory"), "a directory, e.g. /var/lib/edgemux/acme");
    if (p === undefined) ok = false;
    else stateDirectory = p;
  }
  let retryInterval: number = DEFAULTS.acme.retryInterval;
  if (map.has("retry_interval")) {
    const t = map.get("retry_interval").duration(100);
    if (t === undefined) ok = false;
    else retryInterval = t;
  }
  if (!ok) return undefined;
  return {
    email: email!.trim(),
    directoryUrl,
    caFile,
    challenges,
    keyType,
    stateDirectory,
    retryInterval,
    position: value.position,
  };
}

function readListener(
  name: string,
  value: Value,
  backendNames: string[],
): ListenerConfig | undefined {
  const map = value.map(CONFIG_KEYS.listener);
  if (map === undefined) return undefined;
  const binds: HostPort[] = [];
  const bindPositions: SourcePosition[] = [];
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
    bindPositions.push(item.position);
  }

  const sniff: Draft<ListenerConfig["sniff"]> = {
    timeout: DEFAULTS.listener.sniff.timeout,
    silentAfter: DEFAULTS.listener.sniff.silentAfter,
    maxHelloSize: DEFAULTS.listener.sniff.maxHelloSize,
  };
  let sniffOk = true;
  const s = map.has("sniff") ? map.get("sniff").map(CONFIG_KEYS.sniff) : null;
  if (s === undefined) {
    sniffOk = false;
  } else if (s !== null) {
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
    if (s.has("silent_after") && sniffOk && sniff.silentAfter! >= sniff.timeout) {
      s.get("silent_after").error(
        `silent_after (${formatDuration(sniff.silentAfter!)}) is not shorter than the sniff ` +
          (s.has("timeout")
            ? `timeout (${formatDuration(sniff.timeout)})`
            : `timeout, which defaults to ${formatDuration(sniff.timeout)}`),
        s.has("timeout")
          ? "make silent_after shorter than sniff.timeout, or raise the timeout"
          : `sniff.timeout defaults to ${
            formatDuration(sniff.timeout)
          }; make silent_after shorter, or set a longer timeout`,
      );
      sniffOk = false;
    } else if (!s.has("silent_after") && sniff.silentAfter! >= sniff.timeout) {
      // A short sniff timeout pulls the default silence wait down with it.
      sniff.silentAfter = Math.floor(sniff.timeout / 2);
    }
  }
  const idleTimeout = map.has("idle_timeout")
    ? map.get("idle_timeout").duration(1000)
    : DEFAULTS.listener.idleTimeout;
  const maxConnections = map.has("max_connections")
    ? map.get("max_connections").integer(1, 10_000_000)
    : null;
  const proxyProtocol = map.has("proxy_protocol")
    ? readListenerProxyProtocol(map.get("proxy_protocol"))
    : null;

  const routes: RouteConfig[] = [];
  const routesValue = map.require("routes", "a list of routes (see docs/config.md)");
  const items = routesValue?.list({ nonEmpty: true }) ?? [];
  items.forEach((item, index) => {
    const route = readRoute(name, index, item, backendNames);
    if (route !== undefined) routes.push(route);
  });
  if (
    binds.length === 0 || !sniffOk || idleTimeout === undefined || maxConnections === undefined ||
    proxyProtocol === undefined || routes.length !== items.length ||
    routes.length === 0
  ) {
    return undefined;
  }
  // Without a route that takes silent clients, waiting for silence makes no sense.
  const takesSilent = routes.some((r) =>
    r.match.protocols === null || r.match.protocols.includes("silent")
  );
  if (!takesSilent) {
    if (s?.has("silent_after")) {
      s.get("silent_after").warn(
        "silent_after has no effect: no route of this listener takes silent clients",
        "add `protocol: silent` (or `[ssh, silent]`) to the route for clients that wait, or remove silent_after",
      );
    }
    sniff.silentAfter = null;
  }
  const names = new Map<string, number>();
  routes.forEach((r, i) => {
    const before = names.get(r.name);
    if (before !== undefined) {
      items[i].error(
        `the route name "${r.name}" is already used by routes[${before}]`,
        "give each route of a listener its own name (the access log tells them apart by it)",
      );
    } else names.set(r.name, i);
  });
  if (names.size !== routes.length) return undefined;
  return {
    name,
    binds,
    bindPositions,
    sniff,
    idleTimeout,
    maxConnections,
    proxyProtocol,
    routes,
    position: value.position,
  };
}

/**
 * A listener's `proxy_protocol`: which addresses may send PROXY headers, and how long a header
 * may take. Both versions are accepted (a header says which it is), so there is no version key.
 */
function readListenerProxyProtocol(value: Value): ProxyProtocolAccept | undefined {
  const text = value.describe();
  if (text !== "a map") {
    // `proxy_protocol: v2` is how a backend *sends* headers; a listener must say whom to trust.
    return value.error(
      `a listener's proxy_protocol is a map naming the load balancers allowed to send PROXY ` +
        `headers, not ${text}`,
      "write proxy_protocol: { accept_from: [10.0.0.0/8] } (v1 and v2 headers are both " +
        "accepted; every other client is refused)",
    );
  }
  const map = value.map(CONFIG_KEYS.listenerProxyProtocol);
  if (map === undefined) return undefined;
  let ok = true;
  const acceptFrom: string[] = [];
  const list = map.require("accept_from", "[10.0.0.0/8]")?.list({ single: true, nonEmpty: true });
  if (list === undefined) ok = false;
  for (const item of list ?? []) {
    const entry = item.string('an address or CIDR of a load balancer, e.g. "10.0.0.0/8"');
    if (entry === undefined) {
      ok = false;
      continue;
    }
    try {
      new CidrSet([entry.trim()]);
      acceptFrom.push(entry.trim());
    } catch (e) {
      item.error(
        (e as Error).message,
        'write an address ("192.0.2.7") or a network ("10.0.0.0/8") of the load balancers',
      );
      ok = false;
    }
  }
  let timeout: number = DEFAULTS.listener.proxyProtocolTimeout;
  if (map.has("timeout")) {
    const t = map.get("timeout").duration(10);
    if (t === undefined) ok = false;
    else timeout = t;
  }
  return ok ? { acceptFrom, timeout } : undefined;
}

function readRoute(
  listener: string,
  index: number,
  value: Value,
  backendNames: string[],
): RouteConfig | undefined {
  const map = value.map(CONFIG_KEYS.route);
  if (map === undefined) return undefined;
  const actions = ACTION_KEYS.filter((k) => map.present(k));
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
  if (!map.has(actionKey)) {
    map.get(actionKey).error(
      `${actionKey} has no value`,
      actionKey === "redirect"
        ? "write `redirect: https`, or a map such as `redirect: { https_port: 443 }`"
        : actionKey === "reject"
        ? "write `reject: true`"
        : `name the backend: \`${actionKey}: BACKEND\``,
    );
    return undefined;
  }
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
          : backendNames.length === 0
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
    case "edge":
    case "reencrypt":
      action = readTerminate(
        actionKey,
        actionValue,
        routeName ?? `${listener}#${index}`,
        backendRef,
      );
      break;
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

function readTerminate(
  kind: "edge" | "reencrypt",
  value: Value,
  routeName: string,
  backendRef: (v: Value) => string | undefined,
): TerminateAction | undefined {
  if (value.describe() !== "a map") {
    // `edge: prometheus`: every request to one backend.
    const backend = backendRef(value);
    if (backend === undefined) return undefined;
    return {
      kind,
      upstream: {
        kind: "http",
        routes: [{
          name: routeName,
          hosts: null,
          path: null,
          action: { kind: "backend", backend },
          stripPrefix: false,
          rewritePrefix: null,
          requestHeaders: { remove: [], set: [], add: [] },
          responseHeaders: { remove: [], set: [], add: [] },
          position: value.position,
        }],
      },
    };
  }
  const map = value.map(CONFIG_KEYS.terminate);
  if (map === undefined) return undefined;
  if (map.has("http") === map.has("tcp")) {
    value.error(
      `${kind} needs exactly one of "http" (a list of HTTP routes) and "tcp" (a backend)`,
      `write \`${kind}: { http: [...] }\`, \`${kind}: { tcp: backend }\`, or \`${kind}: backend\``,
    );
    return undefined;
  }
  if (map.has("tcp")) {
    const backend = backendRef(map.get("tcp"));
    return backend === undefined ? undefined : { kind, upstream: { kind: "tcp", backend } };
  }
  const routes: HttpRouteConfig[] = [];
  const items = map.get("http").list({ nonEmpty: true }) ?? [];
  items.forEach((item, i) => {
    const r = readHttpRoute(item, `${routeName}/http#${i}`, backendRef);
    if (r !== undefined) routes.push(r);
  });
  if (routes.length !== items.length || routes.length === 0) return undefined;
  return { kind, upstream: { kind: "http", routes } };
}

function readHttpRoute(
  value: Value,
  defaultName: string,
  backendRef: (v: Value) => string | undefined,
): HttpRouteConfig | undefined {
  const map = value.map(CONFIG_KEYS.httpRoute);
  if (map === undefined) return undefined;
  let ok = true;
  const name = map.has("name") ? map.get("name").string("a name for the logs") : defaultName;
  let hosts: HostPattern[] | null = null;
  if (map.has("host")) {
    hosts = [];
    for (const item of map.get("host").list({ single: true, nonEmpty: true }) ?? []) {
      const text = item.string('a host such as "app.example.tld" or "*.example.tld"');
      const pattern = text === undefined ? undefined : parseHostPattern(text, "host");
      if (pattern === undefined) ok = false;
      else if ("problem" in pattern) {
        item.error(`cannot use host "${text}": ${pattern.problem}`, pattern.fix);
        ok = false;
      } else hosts.push(pattern);
    }
  }
  let path: PathMatch | null = null;
  if (map.has("path") && map.has("path_prefix")) {
    map.get("path_prefix").error(
      "a route takes either path (exact) or path_prefix, not both",
      "keep one of them",
    );
    ok = false;
  } else if (map.has("path") || map.has("path_prefix")) {
    const key = map.has("path") ? "path" : "path_prefix";
    const text = map.get(key).string('a path starting with "/", e.g. "/api"');
    if (text === undefined) ok = false;
    else if (!text.startsWith("/") || /[\s?#]/.test(text)) {
      map.get(key).error(
        `"${text}" is not a request path`,
        'start it with "/" and leave out the query and fragment, e.g. "/api"',
      );
      ok = false;
    } else if (normalizePath(text) === null) {
      map.get(key).error(
        `"${text}" has ${pathRefusal(text)}, so no request could match it (such requests are ` +
          "refused with 400)",
        "write the path without it; a route needs a path in the normal form requests are " +
          "matched in (http.path_normalization in docs/config.md)",
      );
      ok = false;
    } else if (normalizePath(text) !== text) {
      map.get(key).error(
        `"${text}" is not in normal form, so no request could match it`,
        `write it as "${normalizePath(text)}" (requests are matched after their path is ` +
          "normalised: dot-segments removed, unreserved characters decoded, slashes merged)",
      );
      ok = false;
    } else path = { kind: key === "path" ? "exact" : "prefix", value: text };
  }
  let action: HttpRouteConfig["action"] | undefined;
  if (map.has("backend") === map.has("redirect")) {
    value.error(
      "an HTTP route needs exactly one of backend and redirect",
      "add `backend: NAME` to proxy the requests, or `redirect: URL` to send clients elsewhere",
    );
    ok = false;
  } else if (map.has("backend")) {
    const backend = backendRef(map.get("backend"));
    if (backend === undefined) ok = false;
    else action = { kind: "backend", backend };
  } else {
    const r = map.get("redirect");
    let location: string | undefined;
    let status: 301 | 302 | 303 | 307 | 308 = DEFAULTS.httpRedirect.status;
    if (r.describe() === "a map") {
      const rm = r.map(CONFIG_KEYS.httpRedirect);
      location = rm?.require("to", '"https://example.tld/"')?.string("a URL or path");
      if (rm?.has("status")) {
        const st = rm.get("status").integer(301, 308);
        if (st === undefined || st === 304 || st === 305 || st === 306) {
          if (st !== undefined) {
            rm.get("status").error(
              `${st} is not a redirect status`,
              "use 301, 302, 303, 307 or 308",
            );
          }
          ok = false;
        } else status = st as typeof status;
      }
    } else location = r.string('a URL such as "https://new.example.tld/" or a path');
    if (location === undefined) ok = false;
    else if (hasControl(location, true)) {
      r.error(`the redirect target contains spaces or control characters`, "percent-encode them");
      ok = false;
    } else action = { kind: "redirect", location, status };
  }
  const strip = map.has("strip_prefix") ? map.get("strip_prefix").boolean() : false;
  let rewritePrefix: string | null = null;
  if (map.has("rewrite_prefix")) {
    const text = map.get("rewrite_prefix").string('a path such as "/v2"');
    if (text === undefined || !text.startsWith("/")) {
      if (text !== undefined) {
        map.get("rewrite_prefix").error(`"${text}" is not a path`, 'start it with "/"');
      }
      ok = false;
    } else rewritePrefix = text;
  }
  if ((strip || rewritePrefix !== null) && path?.kind !== "prefix") {
    map.get(strip ? "strip_prefix" : "rewrite_prefix").error(
      "strip_prefix and rewrite_prefix need a path_prefix to act on",
      "add `path_prefix: /something`, or remove them",
    );
    ok = false;
  }
  if (strip && rewritePrefix !== null) {
    map.get("rewrite_prefix").error(
      "strip_prefix and rewrite_prefix both change the prefix",
      "keep one: rewrite_prefix: / is the same as strip_prefix: true",
    );
    ok = false;
  }
  const requestHeaders = readHeaderOps(map, "request_headers");
  const responseHeaders = readHeaderOps(map, "response_headers");
  if (
    !ok || name === undefined || action === undefined || strip === undefined ||
    requestHeaders === undefined || responseHeaders === undefined
  ) {
    return undefined;
  }
  return {
    name,
    hosts,
    path,
    action,
    stripPrefix: strip,
    rewritePrefix,
    requestHeaders,
    responseHeaders,
    position: value.position,
  };
}

/** True when `text` has control characters (and, with `space`, spaces) it may not carry. */
function hasControl(text: string, space: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7f || (c < 0x20 && c !== 0x09) || (space && (c === 0x20 || c === 0x09))) {
      return true;
    }
  }
  return false;
}

/** Fields edgemux manages itself; changing them from the config would break framing or routing. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-connection",
]);

function readHeaderOps(map: MapValue, key: string): HeaderOps | undefined {
  const ops: Draft<HeaderOps> = { remove: [], set: [], add: [] };
  if (!map.has(key)) return ops;
  const m = map.get(key).map(CONFIG_KEYS.headerOps);
  if (m === undefined) return undefined;
  let ok = true;
  const checkName = (v: Value, name: string): boolean => {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      v.error(`"${name}" is not a valid header name`, "use letters, digits and - only");
      return false;
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      v.error(
        `the header "${name}" is managed by edgemux and cannot be changed here`,
        "remove it from the route's header changes",
      );
      return false;
    }
    return true;
  };
  for (const op of ["set", "add"] as const) {
    if (!m.has(op)) continue;
    const fields = m.get(op).map(null);
    if (fields === undefined) {
      ok = false;
      continue;
    }
    for (const [name, v] of fields.entries) {
      const text = v.describe() === "a map" || v.describe() === "a list" ? undefined : String(
        (v.resolved() as { value?: unknown } | null)?.value ?? "",
      );
      if (text === undefined || hasControl(text, false)) {
        v.error(`the value of ${name} must be one line of text`, "write it as a string");
        ok = false;
      } else if (checkName(v, name)) ops[op].push([name.toLowerCase(), text]);
      else ok = false;
    }
  }
  if (m.has("remove")) {
    for (const item of m.get("remove").list({ single: true }) ?? []) {
      const name = item.string("a header name");
      if (name === undefined || !checkName(item, name)) ok = false;
      else ops.remove.push(name.toLowerCase());
    }
  }
  return ok ? ops : undefined;
}

function readRedirect(
  value: Value,
  backendRef: (v: Value) => string | undefined,
): RedirectAction | undefined {
  const action: Draft<RedirectAction> = {
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
  const map = value.map(CONFIG_KEYS.redirect);
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
  edge: { allowed: ["tls"], default: ["tls"] },
  reencrypt: { allowed: ["tls"], default: ["tls"] },
  forward: { allowed: null, default: null },
  redirect: { allowed: ["http"], default: ["http"] },
  reject: { allowed: null, default: null },
};

/**
 * Names people write for a protocol that edgemux sees under another name (keyed by the value as
 * `Value.describe()` quotes it, lowercased). The closest-spelling hint would suggest "http" for
 * "https", which is the opposite of what is meant.
 */
const PROTOCOL_ALIASES: Record<string, { why: string; fix: string }> = Object.fromEntries([
  ...["https", "ssl", "wss"].map((name) => [`"${name}"`, {
    why: `${name.toUpperCase()} arrives as a TLS connection (routed by its ClientHello)`,
    fix: "use protocol: tls (and sni: or alpn: to narrow it)",
  }]),
  ...["h2", "http2", "http/2", "http/1.1"].map((name) => [`"${name}"`, {
    why: `"${name}" is an ALPN protocol offered inside TLS`,
    fix: `use protocol: tls with alpn: [${name === "http2" || name === "http/2" ? "h2" : name}]`,
  }]),
  ['"tcp"', {
    why: "every connection is TCP",
    fix: "leave protocol out (or write protocol: any) to take every connection",
  }],
]);

function readMatch(map: MapValue, actionKey: ActionKey): RouteMatch | undefined {
  let protocols: Protocol[] | null = ACTION_PROTOCOLS[actionKey].default;
  let ok = true;
  if (map.has("protocol")) {
    const listed: Protocol[] = [];
    const items = map.get("protocol").list({ single: true, nonEmpty: true }) ?? [];
    for (const item of items) {
      const alias = PROTOCOL_ALIASES[item.describe().toLowerCase()];
      if (alias !== undefined) {
        item.error(
          `${item.describe()} is not one of the protocols edgemux tells apart: ${alias.why}`,
          alias.fix,
        );
        ok = false;
        continue;
      }
      const p = item.oneOf([...PROTOCOLS, "any"] as const);
      if (p === undefined) {
        ok = false;
      } else if (p === "any") {
        if (items.length > 1) {
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
          `${/^[aeiou]/.test(actionKey) ? "an" : "a"} ${actionKey} route cannot take ${
            bad.map((p) => `"${p}"`).join(", ")
          } connections`,
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
        item.error(`cannot use server name "${text}": ${pattern.problem}`, pattern.fix);
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
      } else if (!isPrintableAscii(text)) {
        // Offered names are compared byte for byte; a character outside ASCII has no one
        // byte form to compare with, and registered ids are all printable ASCII.
        item.error(
          "an ALPN protocol id here must be printable ASCII (bytes 0x20-0x7e)",
          'use the registered id, such as "h2" or "acme-tls/1"',
        );
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
 * Parses a route's server name or HTTP host: an exact name, `*.suffix` (one extra label) or
 * `**.suffix` (one or more extra labels). The name is normalised the way the ClientHello parser
 * normalises what clients send: lowercase, one trailing dot removed, and a name written in
 * Unicode (`bücher.example.test`) turned into its A-labels (`xn--bcher-kva.example.test`), the
 * form clients send and certificates carry.
 */
function parseHostPattern(
  text: string,
  key: "sni" | "host" = "sni",
): HostPattern | { problem: string; fix: string } {
  let name = text.trim().toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name === "*" || name === "**") {
    return {
      problem: `a lone ${name} matches nothing in particular`,
      fix: key === "sni"
        ? "leave sni out to match every name (a default route)"
        : "leave host out to match every host",
    };
  }
  if (name.startsWith(".") && name.length > 1 && !name.startsWith("..")) {
    // nginx's `.example.tld` (the name and every name under it), written edgemux's way.
    return {
      problem: "a leading dot is not a pattern here",
      fix: `write "**${name}" for names under it at any depth, and list "${
        name.slice(1)
      }" too if the name itself should match`,
    };
  }
  const anyDepth = name.startsWith("**.");
  const wildcard = !anyDepth && name.startsWith("*.");
  let rest = anyDepth ? name.slice(3) : wildcard ? name.slice(2) : name;
  if (rest.includes("*")) {
    return {
      problem: "a wildcard is only allowed as the whole leftmost label",
      fix: 'write "*.example.tld" for exactly one extra label, or "**.example.tld" for any depth',
    };
  }
  if (/\P{ASCII}/u.test(rest)) {
    // An internationalised name: UTS #46 mapping and Punycode, as clients and CAs do it.
    const ascii = domainToASCII(rest);
    if (ascii === "" || /\P{ASCII}/u.test(ascii)) {
      return {
        problem: "it is not a valid internationalized domain name (IDNA)",
        fix: "check the spelling, or write its A-label (xn--) form",
      };
    }
    rest = ascii;
  }
  const labels = rest.split(".");
  const labelOk = (l: string) =>
    l.length >= 1 && l.length <= 63 && /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(l);
  if (rest.length === 0 || rest.length > 253 || !labels.every(labelOk)) {
    return {
      problem: "it is not a valid DNS name",
      fix: "use letters, digits and hyphens in dot-separated labels",
    };
  }
  if (/^[0-9.]+$/.test(rest)) {
    return {
      problem: "an IP address is never sent as a TLS server name",
      fix: "route clients without a server name with a route that leaves sni out",
    };
  }
  if (anyDepth) return { kind: "anyDepth", suffix: rest };
  return wildcard ? { kind: "wildcard", suffix: rest } : { kind: "exact", name: rest };
}

function samePattern(a: HostPattern, b: HostPattern): boolean {
  return formatHostPattern(a) === formatHostPattern(b);
}

/**
 * Two listeners on one address:port cannot both bind. On Linux a `[::]` bind also takes IPv4
 * (dual stack), so it collides with any IPv4 bind on the same port.
 */
function checkDuplicateBinds(listeners: ListenerConfig[], issues: Issues): void {
  const seen: { listener: string; bind: HostPort }[] = [];
  for (const listener of listeners) {
    for (const [bindIndex, bind] of listener.binds.entries()) {
      if (bind.port === 0) continue; // Port 0 asks the kernel for a fresh port every time.
      for (const other of seen) {
        if (other.bind.port !== bind.port) continue;
        const same = other.bind.host === bind.host;
        if (!same && !alsoTakes(other.bind, bind) && !alsoTakes(bind, other.bind)) continue;
        const otherName = other.listener === listener.name
          ? "this listener"
          : `listener "${other.listener}"`;
        issues.add(
          "error",
          listener.bindPositions[bindIndex],
          `${entryPath("listeners", listener.name)}.bind` +
            (listener.binds.length > 1 ? `[${bindIndex}]` : ""),
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

/** True when a bind to `wide` also takes `narrow`'s address, on the same port. */
function alsoTakes(wide: HostPort, narrow: HostPort): boolean {
  return (wide.host === "::" && narrow.kind !== "name") ||
    (wide.host === "0.0.0.0" && narrow.kind === "ipv4");
}

/**
 * A redirect without `https_port` sends clients to the port of the listener that takes TLS, so
 * the example's 8080 → 8443 redirect needs no extra setting. With several such listeners on
 * different ports, the user must say which.
 */
function resolveRedirectPorts(listeners: ListenerConfig[], issues: Issues): void {
  // A catch-all forward also takes TLS, but only routes that name TLS make a listener https.
  const tlsListeners = listeners.filter((l) =>
    l.routes.some((r) => r.match.protocols !== null && r.match.protocols.includes("tls"))
  );
  const ports = new Set(tlsListeners.map((l) => l.binds[0].port));
  for (const listener of listeners) {
    listener.routes.forEach((route, index) => {
      // Still part of building the config: the redirect learns its port from the other listeners.
      const action = route.action as Draft<RouteAction>;
      if (action.kind !== "redirect" || action.httpsPort !== null) return;
      if (tlsListeners.includes(listener)) {
        action.httpsListener = listener.name;
        return;
      }
      if (tlsListeners.length === 0) return; // Plain https on 443: no port in Location.
      if (ports.size === 1 && tlsListeners.length === 1) {
        action.httpsListener = tlsListeners[0].name;
        return;
      }
      if (ports.size === 1 && !ports.has(0)) {
        action.httpsPort = [...ports][0];
        return;
      }
      issues.add(
        "error",
        route.position,
        `${entryPath("listeners", listener.name)}.routes[${index}].redirect`,
        `the redirect cannot tell which https port to send clients to: listeners ${
          tlsListeners.map((l) => `"${l.name}"`).join(", ")
        } take TLS on different ports`,
        "set redirect: { https_port: 443 } (or the port clients should use)",
      );
    });
  }
}

/** Every backend an action may send traffic to. */
function routeBackends(action: RouteAction): string[] {
  switch (action.kind) {
    case "passthrough":
    case "forward":
      return [action.backend];
    case "redirect":
      return action.acmeBackend ? [action.acmeBackend] : [];
    case "reject":
      return [];
    case "edge":
    case "reencrypt":
      return action.upstream.kind === "tcp"
        ? [action.upstream.backend]
        : action.upstream.routes.flatMap((r) =>
          r.action.kind === "backend" ? [r.action.backend] : []
        );
    default:
      return assertNever(action, "route action");
  }
}

/**
 * `edge` talks plain text to its backends and `reencrypt` talks TLS, so a backend's `tls`
 * setting must agree with every terminating route that uses it; passthrough and forward send
 * the client's bytes as they are, so a `tls` block there would be a silent no-op.
 */
function checkTerminationBackends(
  listeners: ListenerConfig[],
  backends: Map<string, BackendConfig>,
  issues: Issues,
): void {
  for (const l of listeners) {
    l.routes.forEach((r, i) => {
      const path = `${entryPath("listeners", l.name)}.routes[${i}].${r.action.kind}`;
      for (const name of routeBackends(r.action)) {
        const b = backends.get(name);
        if (b === undefined) continue;
        const tls = b.tls !== null;
        if (r.action.kind === "edge" && tls) {
          issues.add(
            "error",
            r.position,
            path,
            `route "${r.name}" is edge (plain text to the backend), but backend "${name}" has tls settings`,
            `use reencrypt to speak TLS to "${name}", or remove its tls block`,
          );
        } else if (r.action.kind === "reencrypt" && !tls) {
          issues.add(
            "error",
            r.position,
            path,
            `route "${r.name}" is reencrypt, but backend "${name}" has no tls settings`,
            `add \`tls: true\` (or tls: { ca: ..., server_name: ... }) to backend "${name}", or use edge`,
          );
        } else if ((r.action.kind === "passthrough" || r.action.kind === "forward") && tls) {
          issues.add(
            "error",
            r.position,
            path,
            `route "${r.name}" forwards bytes untouched, so backend "${name}"'s tls settings would be ignored`,
            `remove the tls block from "${name}" (the client's TLS reaches the server as it is)`,
          );
        }
      }
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
      for (const b of routeBackends(r.action)) used.add(b);
    }
  }
  for (const b of backends.values()) {
    if (!used.has(b.name)) {
      issues.add(
        "warning",
        b.position,
        entryPath("backends", b.name),
        `the backend "${b.name}" is not used by any route`,
        "route to it, or remove it",
      );
    }
  }
}

function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
