import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { CidrSet, parseIp } from "./cidr.ts";

Deno.test("parseIp() reads an IPv4 address into 4 bytes", () => {
  assert.deepEqual(parseIp("192.0.2.7"), Uint8Array.of(192, 0, 2, 7));
  assert.deepEqual(parseIp("0.0.0.0"), Uint8Array.of(0, 0, 0, 0));
  assert.deepEqual(parseIp("255.255.255.255"), Uint8Array.of(255, 255, 255, 255));
});

Deno.test("parseIp() reads an IPv6 address into 16 bytes", () => {
  const bytes = (...groups: number[]) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 255]));
  assert.deepEqual(parseIp("2001:db8::1"), bytes(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
  assert.deepEqual(parseIp("2001:DB8:0:0:0:0:0:1"), bytes(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
  assert.deepEqual(parseIp("::"), bytes(0, 0, 0, 0, 0, 0, 0, 0));
  assert.deepEqual(parseIp("::1"), bytes(0, 0, 0, 0, 0, 0, 0, 1));
  assert.deepEqual(parseIp("fe80::"), bytes(0xfe80, 0, 0, 0, 0, 0, 0, 0));
  assert.deepEqual(parseIp("1:2:3:4:5:6:7::"), bytes(1, 2, 3, 4, 5, 6, 7, 0));
  assert.deepEqual(parseIp("::ffff:192.0.2.7"), bytes(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207));
  assert.deepEqual(parseIp("1:2:3:4:5:6:1.2.3.4"), bytes(1, 2, 3, 4, 5, 6, 0x0102, 0x0304));
});

Deno.test("parseIp() refuses text that is not an address", () => {
  const bad = [
    "",
    "192.0.2",
    "192.0.2.7.1",
    "192.0.2.256",
    "192.0.2.07", // leading zeros read as octal by some parsers
    "192.0.2.7 ",
    "192.0..7",
    "1.2.3.4/8",
    ":",
    ":::",
    "1:::2",
    "1::2::3",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "12345::",
    ":1::",
    "1::2:",
    "::g",
    "::1.2.3",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1.2.3.4:5",
    "[::1]",
    "fe80::1%eth0",
    "localhost",
  ];
  for (const text of bad) assert.equal(parseIp(text), null, JSON.stringify(text));
});

Deno.test("CidrSet.contains() matches an IPv4 network and misses just outside it", () => {
  const set = new CidrSet(["10.0.0.0/8", "192.168.1.0/24"]);
  for (const ip of ["10.0.0.0", "10.1.2.3", "10.255.255.255", "192.168.1.0", "192.168.1.255"]) {
    assert.ok(set.contains(ip), ip);
  }
  for (const ip of ["9.255.255.255", "11.0.0.0", "192.168.0.255", "192.168.2.0", "::1"]) {
    assert.ok(!set.contains(ip), ip);
  }
});

Deno.test("CidrSet.contains() takes a lone IPv4 address as a /32", () => {
  const set = new CidrSet(["192.168.1.7"]);
  assert.ok(set.contains("192.168.1.7"));
  assert.ok(!set.contains("192.168.1.6"));
  assert.ok(!set.contains("192.168.1.8"));
});

Deno.test("CidrSet.contains() takes a lone IPv6 address as a /128", () => {
  const set = new CidrSet(["::1"]);
  assert.ok(set.contains("::1"));
  assert.ok(set.contains("0:0:0:0:0:0:0:1"));
  assert.ok(!set.contains("::2"));
  assert.ok(!set.contains("::"));
  assert.ok(!set.contains("127.0.0.1"));
});

Deno.test("CidrSet.contains() matches an IPv6 network and misses just outside it", () => {
  const set = new CidrSet(["fd00::/8", "2001:db8:1::/48"]);
  for (const ip of ["fd00::", "fdff:ffff::1", "2001:db8:1::1", "2001:DB8:1:ffff::"]) {
    assert.ok(set.contains(ip), ip);
  }
  for (const ip of ["fc00::1", "fe00::", "2001:db8:2::", "2001:db8::ffff", "10.0.0.1"]) {
    assert.ok(!set.contains(ip), ip);
  }
});

Deno.test("CidrSet.contains() handles prefixes that end inside a 32-bit word or at its edge", () => {
  const set = new CidrSet(["2001:db8:8000::/33", "2001:db9::/32", "fe80::/10", "172.16.0.0/12"]);
  assert.ok(set.contains("2001:db8:8000::1"));
  assert.ok(set.contains("2001:db8:ffff:ffff::"));
  assert.ok(!set.contains("2001:db8:7fff::"));
  assert.ok(set.contains("2001:db9:ffff::"));
  assert.ok(!set.contains("2001:dba::"));
  assert.ok(set.contains("febf::1"));
  assert.ok(!set.contains("fec0::1"));
  assert.ok(set.contains("172.31.255.255"));
  assert.ok(!set.contains("172.32.0.0"));
  assert.ok(!set.contains("172.15.255.255"));
});

Deno.test("CidrSet.contains() matches IPv4-mapped IPv6 addresses against IPv4 entries", () => {
  const set = new CidrSet(["10.0.0.0/8"]);
  assert.ok(set.contains("::ffff:10.1.2.3"));
  assert.ok(set.contains("::FFFF:a01:203"));
  assert.ok(set.contains("0:0:0:0:0:ffff:10.1.2.3"));
  // Near misses: outside the network, and addresses that are not in the mapped range.
  assert.ok(!set.contains("::ffff:11.0.0.0"));
  assert.ok(!set.contains("::10.1.2.3"));
  assert.ok(!set.contains("64:ff9b::10.1.2.3"));
  assert.ok(!set.contains("::fffe:10.1.2.3"));
});

Deno.test("CidrSet takes a mapped entry of /96 or longer as the IPv4 network it stands for", () => {
  const set = new CidrSet(["::ffff:10.0.0.0/104"]);
  assert.ok(set.contains("10.9.9.9"));
  assert.ok(set.contains("::ffff:10.9.9.9"));
  assert.ok(!set.contains("11.0.0.0"));
  assert.ok(!set.contains("::ffff:11.0.0.0"));
  const all = new CidrSet(["::ffff:0.0.0.0/96"]);
  assert.ok(all.contains("203.0.113.9"));
  assert.ok(!all.contains("2001:db8::1"));
});

Deno.test("CidrSet keeps IPv6 entries from matching IPv4 clients, even ::/0", () => {
  const v6 = new CidrSet(["::/0"]);
  assert.ok(v6.contains("2001:db8::1"));
  assert.ok(v6.contains("::"));
  assert.ok(!v6.contains("192.0.2.7"));
  assert.ok(!v6.contains("::ffff:192.0.2.7"));
  const both = new CidrSet(["::/0", "0.0.0.0/0"]);
  assert.ok(both.contains("192.0.2.7"));
  assert.ok(both.contains("::ffff:192.0.2.7"));
});

Deno.test("CidrSet.contains() ignores an IPv6 zone", () => {
  const set = new CidrSet(["fe80::/10"]);
  assert.ok(set.contains("fe80::1%eth0"));
  assert.ok(set.contains("fe80::1%2"));
  assert.ok(!set.contains("fec0::1%eth0"));
  // Near misses: an empty zone, and a zone on an IPv4 address.
  assert.ok(!set.contains("fe80::1%"));
  assert.ok(!new CidrSet(["10.0.0.0/8"]).contains("10.0.0.1%eth0"));
});

Deno.test("CidrSet.contains() is false for text that is not an address, and for an empty set", () => {
  const set = new CidrSet(["0.0.0.0/0", "::/0"]);
  for (const text of ["", "localhost", "[::1]", "10.0.0.1:80", "10.0.0.256", "%eth0"]) {
    assert.ok(!set.contains(text), text);
  }
  assert.ok(!new CidrSet([]).contains("10.0.0.1"));
});

Deno.test("new CidrSet() refuses an entry with host bits set, and says how to write it", () => {
  const cases: [string, string][] = [
    [
      "10.0.0.1/8",
      'Cannot parse CIDR entry "10.0.0.1/8": the address has host bits set beyond its /8 ' +
      'prefix; write "10.0.0.0/8" for the network, or "10.0.0.1/32" for the one address',
    ],
    [
      "fd00::1/8",
      'Cannot parse CIDR entry "fd00::1/8": the address has host bits set beyond its /8 ' +
      'prefix; write "fd00::/8" for the network, or "fd00::1/128" for the one address',
    ],
    [
      "2001:db8:0:0:1::/64",
      'Cannot parse CIDR entry "2001:db8:0:0:1::/64": the address has host bits set beyond ' +
      'its /64 prefix; write "2001:db8::/64" for the network, or "2001:db8:0:0:1::/128" for ' +
      "the one address",
    ],
    [
      "::ffff:10.0.0.1/104",
      'Cannot parse CIDR entry "::ffff:10.0.0.1/104": the address has host bits set beyond ' +
      'its /104 prefix; write "::ffff:10.0.0.0/104" for the network, or ' +
      '"::ffff:10.0.0.1/128" for the one address',
    ],
  ];
  for (const [entry, message] of cases) {
    assert.throws(() => new CidrSet(["127.0.0.0/8", entry]), { name: "RangeError", message });
  }
  // Near misses: the same networks written right.
  new CidrSet(["10.0.0.0/8", "fd00::/8", "2001:db8::/64", "::ffff:10.0.0.0/104", "10.0.0.1/32"]);
});

Deno.test("new CidrSet() refuses bad addresses and prefix lengths, naming the entry", () => {
  const cases: [string, RegExp][] = [
    ["10.0.0", /"10\.0\.0" is not an IPv4 or IPv6 address; write an address such as/],
    ["10.0.0.0/33", /"\/33" is not a prefix length for IPv4; write a whole number .* 0 to 32/],
    ["fd00::/129", /"\/129" is not a prefix length for IPv6; .* 0 to 128/],
    ["10.0.0.0/", /"\/" is not a prefix length/],
    ["10.0.0.0/-1", /"\/-1" is not a prefix length/],
    ["10.0.0.0/8/8", /"\/8\/8" is not a prefix length/],
    ["", /"" is not an IPv4 or IPv6 address/],
    ["example.test/8", /"example\.test" is not an IPv4 or IPv6 address/],
  ];
  for (const [entry, message] of cases) {
    assert.throws(() => new CidrSet([entry]), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.ok(e.message.startsWith(`Cannot parse CIDR entry "${entry}": `), e.message);
      assert.match(e.message, message);
      return true;
    });
  }
});

// Property tests (STYLE.md §12): node:net's isIP and the WHATWG URL parser as references for
// which texts are addresses and what they mean; random networks for containment.

/** RFC 5952 text for 16 bytes, with plain hex groups (as the URL parser writes them). */
function formatV6(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
  }
  const hex = (part: number[]) => part.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLength))}`;
}

const addressLikeArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.".split("")), maxLength: 45 }),
  fc.string({ unit: fc.constantFrom(..."0129:."), maxLength: 20 }),
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
);

Deno.test("parseIp() accepts exactly what node:net isIP() accepts", () => {
  fc.assert(
    fc.property(addressLikeArb, (text) => {
      const bytes = parseIp(text);
      const family = isIP(text);
      assert.equal(bytes === null ? 0 : bytes.length === 4 ? 4 : 6, family, text);
    }),
    { numRuns: 20000 },
  );
});

Deno.test("parseIp() reads the same IPv6 bytes as the URL parser", () => {
  fc.assert(
    fc.property(fc.ipV6(), (text) => {
      const bytes = parseIp(text);
      assert.ok(bytes !== null && bytes.length === 16, text);
      assert.equal(`[${formatV6(bytes)}]`, new URL(`http://[${text}]/`).hostname, text);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("parseIp() reads the same IPv4 bytes as the dotted decimals say", () => {
  fc.assert(
    fc.property(fc.ipV4(), (text) => {
      assert.deepEqual(parseIp(text), Uint8Array.from(text.split(".").map(Number)));
    }),
  );
});

/** The network of `bytes` with `prefix` bits, as bytes, and the same with one bit flipped. */
function networkOf(bytes: Uint8Array, prefix: number): Uint8Array {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    return b & (0xff << (8 - keep));
  });
}

function formatAny(b: Uint8Array): string {
  return b.length === 4 ? b.join(".") : formatV6(b);
}

const networkCaseArb = fc.oneof(fc.constant(4), fc.constant(16)).chain((size) =>
  fc.record({
    address: fc.uint8Array({ minLength: size, maxLength: size }),
    prefix: fc.nat({ max: size * 8 }),
  })
);

Deno.test("CidrSet.contains() takes the addresses of a random network and refuses its neighbours", () => {
  fc.assert(
    fc.property(networkCaseArb, ({ address, prefix }) => {
      const network = networkOf(address, prefix);
      const set = new CidrSet([`${formatAny(network)}/${prefix}`]);
      assert.ok(set.contains(formatAny(address)));
      if (prefix > 0) {
        // Flipping the last network bit leaves the network.
        const outside = address.slice();
        outside[(prefix - 1) >> 3] ^= 0x80 >> ((prefix - 1) & 7);
        assert.ok(!set.contains(formatAny(outside)));
      }
      if (address.length === 4) {
        assert.ok(set.contains(`::ffff:${formatAny(address)}`));
        const mapped = new CidrSet([`::ffff:${formatAny(network)}/${prefix + 96}`]);
        assert.ok(mapped.contains(formatAny(address)));
      }
    }),
    { numRuns: 5000 },
  );
});
