import assert from "node:assert/strict";
import {
  type AddressProblem,
  formatHostPort,
  type HostPort,
  isHostname,
  isIPv4,
  isIPv6,
  isWildcardHost,
  parseHostPort,
} from "./address.ts";

const BIND = { bindOnly: true, allowPortZero: true };
const SERVER = { bindOnly: false, allowPortZero: false };

function parsed(r: HostPort | AddressProblem): HostPort {
  if ("problem" in r) assert.fail(`expected an address, got ${JSON.stringify(r)}`);
  return r;
}

function problem(r: HostPort | AddressProblem): AddressProblem {
  if (!("problem" in r)) assert.fail(`expected a problem, got ${JSON.stringify(r)}`);
  return r;
}

Deno.test("parseHostPort() reads IPv4 and bracketed IPv6 binds", () => {
  assert.deepEqual(parsed(parseHostPort("0.0.0.0:443", BIND)), {
    host: "0.0.0.0",
    port: 443,
    kind: "ipv4",
  });
  assert.deepEqual(parsed(parseHostPort("127.0.0.1:8443", BIND)), {
    host: "127.0.0.1",
    port: 8443,
    kind: "ipv4",
  });
  assert.deepEqual(parsed(parseHostPort("[::]:443", BIND)), {
    host: "::",
    port: 443,
    kind: "ipv6",
  });
  assert.deepEqual(parsed(parseHostPort("[::ffff:192.0.2.1]:80", BIND)), {
    host: "::ffff:192.0.2.1",
    port: 80,
    kind: "ipv6",
  });
  assert.equal(parsed(parseHostPort("[2001:db8::1]:65535", BIND)).port, 65535);
});

Deno.test("parseHostPort() accepts port 0 for a bind but not for a server", () => {
  assert.equal(parsed(parseHostPort("127.0.0.1:0", BIND)).port, 0);
  const p = problem(parseHostPort("127.0.0.1:0", SERVER));
  assert.equal(p.problem, "port 0 is out of range");
  assert.match(p.fix, /1 to 65535/);
});

Deno.test("parseHostPort() refuses a host name for a bind and says to use an IP address", () => {
  const p = problem(parseHostPort("localhost:443", BIND));
  assert.equal(p.problem, '"localhost" is not an IP address');
  assert.match(p.fix, /\[::\]:443/);
  assert.match(p.fix, /0\.0\.0\.0:443/);
});

Deno.test("parseHostPort() accepts a host name for a server and lowercases it", () => {
  assert.deepEqual(parsed(parseHostPort("Vault.Internal:8200", SERVER)), {
    host: "vault.internal",
    port: 8200,
    kind: "name",
  });
  assert.deepEqual(parsed(parseHostPort("git:22", SERVER)), {
    host: "git",
    port: 22,
    kind: "name",
  });
  assert.equal(parsed(parseHostPort("_srv.example.test:1", SERVER)).kind, "name");
  assert.equal(parsed(parseHostPort("[::1]:8200", SERVER)).kind, "ipv6");
  assert.equal(parsed(parseHostPort("10.0.0.5:8200", SERVER)).kind, "ipv4");
});

Deno.test("parseHostPort() says the host is missing for ':443' and '*:443'", () => {
  for (const text of [":443", "*:443"]) {
    const p = problem(parseHostPort(text, BIND));
    assert.equal(p.problem, "the host is missing", text);
    assert.match(p.fix, /\[::\]:443/);
  }
});

Deno.test("parseHostPort() says the port is missing when there is no colon", () => {
  for (const opts of [BIND, SERVER]) {
    const p = problem(parseHostPort("127.0.0.1", opts));
    assert.equal(p.problem, "the port is missing");
  }
  assert.equal(problem(parseHostPort("vault", SERVER)).problem, "the port is missing");
});

Deno.test("parseHostPort() refuses ports that are empty, not numbers or above 65535", () => {
  const cases: [string, string][] = [
    ["1.2.3.4:99999", "port 99999 is out of range"],
    ["1.2.3.4:65536", "port 65536 is out of range"],
    ["1.2.3.4:", '"" is not a port number'],
    ["1.2.3.4:https", '"https" is not a port number'],
    ["1.2.3.4:-1", '"-1" is not a port number'],
    ["1.2.3.4:123456", '"123456" is not a port number'],
    ["[::1]:", '"" is not a port number'],
  ];
  for (const [text, message] of cases) {
    const p = problem(parseHostPort(text, BIND));
    assert.equal(p.problem, message, text);
    assert.match(p.fix, /1 to 65535/, text);
  }
});

Deno.test("parseHostPort() wants IPv6 in brackets with a colon before the port", () => {
  const unbracketed = problem(parseHostPort("::1:443", BIND));
  assert.equal(unbracketed.problem, "an IPv6 address must be in brackets");
  assert.equal(unbracketed.fix, 'write it as "[::1]:443"');

  for (const text of ["[::1]443", "[::1", "[::1]"]) {
    const p = problem(parseHostPort(text, BIND));
    assert.equal(p.problem, "an IPv6 address needs the form [address]:port", text);
  }
});

Deno.test("parseHostPort() refuses brackets around something that is not IPv6", () => {
  for (const text of ["[1.2.3.4]:80", "[vault]:80", "[fe80::1%eth0]:80", "[]:80"]) {
    const p = problem(parseHostPort(text, SERVER));
    assert.match(p.problem, /is not an IPv6 address/, text);
  }
});

Deno.test("parseHostPort() refuses server names that are not DNS names", () => {
  for (const host of ["bad_host!", "a..b", "-x", "x-", "a b"]) {
    const p = problem(parseHostPort(`${host}:80`, SERVER));
    assert.equal(p.problem, `"${host}" is not a valid host name or IP address`);
  }
});

Deno.test("parseHostPort() refuses a dotted-number server host that is not an IPv4 address", () => {
  // A typo in an IP address must not become a DNS lookup that fails only at connect time; the
  // server-name pattern of a route refuses all-numeric names for the same reason.
  for (const host of ["999.1.1.1", "1.2.3", "01.2.3.4"]) {
    const r = parseHostPort(`${host}:80`, SERVER);
    assert.ok("problem" in r, `${host} was accepted as ${JSON.stringify(r)}`);
  }
});

Deno.test("isIPv4() takes dotted quads without leading zeros only", () => {
  for (const ok of ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.0.10"]) {
    assert.ok(isIPv4(ok), ok);
  }
  for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.", "a.b.c.d", ""]) {
    assert.ok(!isIPv4(bad), bad);
  }
});

Deno.test("isIPv6() takes addresses without brackets or zones", () => {
  for (const ok of ["::", "::1", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1"]) {
    assert.ok(isIPv6(ok), ok);
  }
  for (const bad of ["1.2.3.4", "vault", "[::1]", "fe80::1%eth0", "1:2:3", "::g", ""]) {
    assert.ok(!isIPv6(bad), bad);
  }
});

Deno.test("isHostname() takes letters, digits, hyphens and underscores in labels", () => {
  for (const ok of ["a", "vault.internal", "x-1.example.test", "_srv.x", "example.test."]) {
    assert.ok(isHostname(ok), ok);
  }
  for (const bad of ["", ".", "a..b", "-a", "a-", `${"a".repeat(64)}.test`, "a/b"]) {
    assert.ok(!isHostname(bad), bad);
  }
});

Deno.test("formatHostPort() brackets IPv6 hosts only", () => {
  assert.equal(formatHostPort({ host: "::", port: 443 }), "[::]:443");
  assert.equal(formatHostPort({ host: "127.0.0.1", port: 80 }), "127.0.0.1:80");
  assert.equal(formatHostPort({ host: "vault", port: 8200 }), "vault:8200");
});

Deno.test("isWildcardHost() is true for 0.0.0.0 and :: and nothing else", () => {
  assert.ok(isWildcardHost("0.0.0.0"));
  assert.ok(isWildcardHost("::"));
  assert.ok(!isWildcardHost("::1"));
  assert.ok(!isWildcardHost("127.0.0.1"));
});
