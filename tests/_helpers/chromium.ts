/**
 * Headless Chromium for the tests that load pages through edgemux.
 *
 * @module
 */

/**
 * The flags every headless Chromium in the tests starts with: no sandbox (tests may run as
 * root), no GPU, no QUIC (edgemux serves TCP only), and none of the browser's own background
 * traffic. Callers add a profile directory of their own and what the run is for.
 */
export const HEADLESS_CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
