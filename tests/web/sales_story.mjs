// Flash sale and auction in Debian's headless chromium (through Playwright), driven by
// tests/sales_story.rs: two viewers, each in their own browser context (own cookies), watch a live
// stream. The Rust side starts a flash sale of one unit: viewer A sees the countdown, claims when
// it opens, and viewer B sees "Sold out". Then it starts an auction: A bids, B outbids, and both
// pages show B as the winner when the server ends it.
//
//   node sales_story.mjs BASE_URL STREAM_ID VIEWER_A_TOKEN VIEWER_B_TOKEN
//
// Reports one JSON object per line on stdout: {"kind":"step","name":…}, {"kind":"console",…},
// {"kind":"done"}. Any failed expectation throws (exit non-zero, the reason on stderr).
import { chromium } from "playwright-core";
import { CHROMIUM } from "./chromium.mjs";

const [base, streamId, tokenA, tokenB] = process.argv.slice(2);
if (!base || !streamId || !tokenA || !tokenB) {
  console.error("usage: node sales_story.mjs BASE_URL STREAM_ID VIEWER_A_TOKEN VIEWER_B_TOKEN");
  process.exit(2);
}
const report = (line) => console.log(JSON.stringify(line));
const step = (name, extra = {}) => report({ kind: "step", name, ...extra });
const WAIT = 60_000;

function watchConsole(page, name) {
  page.on("pageerror", (e) => report({ kind: "console", page: name, type: "exception", text: String(e) }));
  page.on("console", (m) => {
    // Claims and bids that lose a race answer 409: expected here.
    if (m.type() === "error" && !m.text().includes("409")) report({ kind: "console", page: name, type: m.type(), text: m.text() });
  });
}

async function viewerPage(browser, name, token) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  watchConsole(page, name);
  await page.goto(`${base}/`);
  await page.evaluate(async (t) => {
    const r = await fetch("/api/v1/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: t }) });
    if (!r.ok) throw new Error(`sign in: ${r.status}`);
  }, token);
  await page.goto(`${base}/watch/${streamId}`);
  await page.waitForSelector("#sales", { state: "attached", timeout: WAIT });
  return page;
}

const browser = await chromium.launch(CHROMIUM);
try {
  const a = await viewerPage(browser, "a", tokenA);
  const b = await viewerPage(browser, "b", tokenB);
  step("watching");

  // The sale appears counting down (the server's starts_at), then opens.
  const saleA = a.locator(".sale.card");
  await saleA.waitFor({ timeout: WAIT });
  const first = await saleA.locator(".sale-status").textContent();
  if (!/Starts in \d+:\d\d/.test(first)) throw new Error(`expected a countdown, got ${first}`);
  step("countdown");
  await a.locator(".sale.card[data-phase=running] button.claim").waitFor({ state: "visible", timeout: WAIT });
  await a.locator("button.claim").click();
  await a.locator(".sale-note", { hasText: "Claimed" }).waitFor({ timeout: WAIT });
  await b.locator(".sale.card[data-phase=sold_out]", { hasText: "Sold out" }).waitFor({ timeout: WAIT });
  if (await b.locator("button.claim").isVisible()) throw new Error("a sold-out sale offers no claim");
  step("claimed_then_sold_out");

  // The auction: A bids, B outbids, B wins when the server's time is up.
  const bidA = a.locator(".auction.card button.bid");
  await bidA.waitFor({ state: "visible", timeout: WAIT });
  const left = await a.locator(".auction-left").textContent();
  if (!/\d+:\d\d left/.test(left)) throw new Error(`expected the time left, got ${left}`);
  await bidA.click();
  await a.locator(".auction-note", { hasText: "You lead" }).waitFor({ timeout: WAIT });
  const handleA = await a.evaluate(async () => (await (await fetch("/api/v1/session")).json()).handle);
  await b.locator(".auction-leader", { hasText: handleA }).waitFor({ timeout: WAIT });
  await b.locator(".auction.card button.bid").click();
  await b.locator(".auction-note", { hasText: "You lead" }).waitFor({ timeout: WAIT });
  const handleB = await b.evaluate(async () => (await (await fetch("/api/v1/session")).json()).handle);
  for (const page of [a, b]) {
    await page.locator(".auction.card[data-phase=ended] .auction-left", { hasText: `Won by ${handleB}` }).waitFor({ timeout: WAIT });
  }
  await b.locator(".auction-note", { hasText: "You won!" }).waitFor({ timeout: WAIT });
  step("auction_won", { winner: handleB });
  report({ kind: "done" });
} finally {
  await browser.close();
}
