/**
 * `host:port` addresses as written in the config, for binds and for backend servers.
 *
 * @module
 */

/** A parsed `host:port`. `host` carries no brackets, even for IPv6. */
export interface HostPort {
  /** An IP address or a DNS name; `0.0.0.0` or `::` for every address. */
  host: string;
  /** The TCP port, 0 to 65535 (0 lets the system pick one when binding). */
  port: number;
  /** Whether `host` is an IPv4 address, an IPv6 address or a name to resolve. */
  kind: "ipv4" | "ipv6" | "name";
}

/** Why an address was refused; the caller adds file, line and key path. */
export interface AddressProblem {
  problem: string;
  fix: string;
}

const IPV4_OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** True when `text` is a dotted-quad IPv4 address without leading zeros. */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => IPV4_OCTET.test(p));
}

/** True when `text` (without brackets) is an IPv6 address. */
export function isIPv6(text: string): boolean {
  if (!text.includes(":") || text.includes("%")) return false;
  try {
    return new URL(`http://[${text}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** True when `text` is a DNS name made of letters, digits and hyphens (plus `_`, seen in SRV-style names). */
export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  // All-numeric labels read as an IPv4 address; if it is not a valid one, it is a typo.
  if (/^[0-9.]+$/.test(name)) return false;
  return name.split(".").every((label) =>
    label.length > 0 && label.length <= 63 &&
    /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)
  );
}

/**
 * Parses `host:port`, `[ipv6]:port`. With `bindOnly`, the host must be an IP address, because
 * a name could resolve to several addresses or change under a running listener.
 */
export function parseHostPort(
  text: string,
  opts: { bindOnly: boolean; allowPortZero: boolean },
): HostPort | AddressProblem {
  const example = opts.bindOnly
    ? '"[::]:443" (every IPv4 and IPv6 address), "0.0.0.0:443" or "127.0.0.1:8443"'
    : '"127.0.0.1:8200", "[::1]:8200" or "vault.internal:8200"';
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      return {
        problem: "an IPv6 address needs the form [address]:port",
        fix: `write it as ${example}`,
      };
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) {
      return { problem: `"${host}" is not an IPv6 address`, fix: `write it as ${example}` };
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) {
      return { problem: "the port is missing", fix: `write it as ${example}` };
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) {
      return {
        problem: "an IPv6 address must be in brackets",
        fix: `write it as "[${host}]:${portText}"`,
      };
    }
    if (host === "" || host === "*") {
      return {
        problem: "the host is missing",
        fix: `name the address to bind: ${example}`,
      };
    }
  }
  if (!/^\d{1,5}$/.test(portText)) {
    return { problem: `"${portText}" is not a port number`, fix: "use a port from 1 to 65535" };
  }
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !opts.allowPortZero)) {
    return { problem: `port ${port} is out of range`, fix: "use a port from 1 to 65535" };
  }
  const kind = text.startsWith("[") ? "ipv6" : isIPv4(host) ? "ipv4" : "name";
  if (kind === "name") {
    if (opts.bindOnly) {
      return {
        problem: `"${host}" is not an IP address`,
        fix: `bind to an IP address, such as ${example}`,
      };
    }
    if (!isHostname(host)) {
      return {
        problem: `"${host}" is not a valid host name or IP address`,
        fix: `write it as ${example}`,
      };
    }
  }
  return { host: kind === "name" ? host.toLowerCase() : host, port, kind };
}

/** Formats an address the way the config writes it: `[::1]:443`, `127.0.0.1:80`. */
export function formatHostPort(a: { host: string; port: number }): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** True for the "every address" binds, `0.0.0.0` and `::`. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}
