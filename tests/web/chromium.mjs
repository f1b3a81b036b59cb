// Launch options of Debian's headless chromium for the browser tests (watch.mjs, story.mjs) and
// bench/llhls-watch.mjs. Flags from the machine notes: no background networking (the network is
// closed), no sandbox (root), muted autoplay without a gesture. CHROMIUM overrides the binary.
export const CHROMIUM = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
};
