import { equal } from "node:assert/strict";
import { localCause, localErrorCounts, noteLocalError } from "./local_errors.ts";

/** An error shaped as Deno 2.9.6 reports it (see the module comment), with errno name and text. */
function osError(code: string, errno: number): Error {
  return Object.assign(new Error(`Some failure (os error ${errno})`), { code });
}

Deno.test("localCause() names each local resource error, by code or by errno text", () => {
  equal(localCause(osError("EMFILE", 24)), "EMFILE");
  equal(localCause(osError("ENFILE", 23)), "ENFILE");
  equal(localCause(osError("ENOBUFS", 105)), "ENOBUFS");
  equal(localCause(osError("ENOMEM", 12)), "ENOMEM");
  equal(localCause(osError("EADDRNOTAVAIL", 99)), "EADDRNOTAVAIL");
  equal(localCause(new Error("Too many open files (os error 24)")), "EMFILE");
  equal(
    localCause(new Deno.errors.AddrNotAvailable("Cannot assign requested address")),
    "EADDRNOTAVAIL",
  );
});

Deno.test("localCause() leaves the peer's errors and non-errors alone", () => {
  equal(localCause(new Deno.errors.ConnectionRefused("Connection refused (os error 111)")), null);
  equal(localCause(osError("ECONNRESET", 104)), null);
  equal(localCause(new Error("No route to host (os error 113)")), null);
  equal(localCause(new Error("connect timed out")), null);
  equal(localCause("EMFILE"), null);
  equal(localCause(null), null);
});

Deno.test("noteLocalError() counts every error by cause", () => {
  const before = localErrorCounts().get("ENOBUFS") ?? 0;
  for (let i = 0; i < 5; i++) noteLocalError("ENOBUFS", "connect", { server: "x" });
  equal(localErrorCounts().get("ENOBUFS"), before + 5);
});
