// Flash sale and auction in Debian's headless chromium (through Playwright), driven by
// tests/sales_story.rs: two viewers, each in their own browser context (own cookies), watch a live
// stream. The Rust side starts a flash sale of one unit: viewer A sees the countdown only once its
// picture reaches the moment the sale was announced, sees it open only once the picture reaches
// the sale's start (the sale's program dates against the date of the frame on screen), claims,
// and viewer B sees "Sold out". Then it starts an auction: A bids, B outbids, and both
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
  // Playing: the page knows the date of the frame on screen.
  await page.waitForFunction(() => document.querySelector("#sales")?.dataset.picture, null, { timeout: WAIT });
  return page;
}

/** What page A shows of the sale at one instant, with the date of the frame on screen. */
const sample = (page) =>
  page.evaluate(() => {
    const box = document.querySelector("#sales");
    const card = box.querySelector(".sale.card");
    return {
      known: !!card,
      hidden: card ? card.hidden : true,
      phase: card?.dataset.phase ?? null,
      status: card?.querySelector(".sale-status")?.textContent ?? null,
      picture: card?.dataset.picture || box.dataset.picture || null,
      behindMs: Number(box.dataset.behindMs),
    };
  });

const browser = await chromium.launch(CHROMIUM);
try {
  const a = await viewerPage(browser, "a", tokenA);
  const b = await viewerPage(browser, "b", tokenB);
  step("watching");

  // The live channel tells the page of the sale ahead of the picture: the card waits, hidden,
  // until the frame on screen reaches the announcement, counts down on the picture's clock, and
  // opens when the frame reaches the sale's start. Every state seen is checked against the date
  // of the frame on screen at that instant.
  const sale = await (await fetch(`${base}/api/v1/streams/${streamId}/sales`)).json().then(async (open) => {
    for (let i = 0; !open.flash_sales.length && i < 600; i++) {
      await new Promise((r) => setTimeout(r, 100));
      open = await (await fetch(`${base}/api/v1/streams/${streamId}/sales`)).json();
    }
    if (!open.flash_sales.length) throw new Error("no flash sale");
    return open.flash_sales[0];
  });
  const announced = Date.parse(sale.announced_program_date_time);
  const starts = Date.parse(sale.starts_program_date_time);
  const seen = { waiting: 0, countdown: 0, behind: [] };
  for (const deadline = Date.now() + WAIT; ; ) {
    if (Date.now() > deadline) throw new Error(`the sale never opened: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 50));
    const s = await sample(a);
    const picture = s.picture ? Date.parse(s.picture) : NaN;
    if (s.known && Number.isFinite(s.behindMs)) seen.behind.push(s.behindMs);
    if (!s.known) continue;
    if (!Number.isFinite(picture)) throw new Error(`no picture date: ${JSON.stringify(s)}`);
    if (s.hidden) {
      if (picture >= announced) throw new Error(`hidden although the picture reached the announcement: ${JSON.stringify(s)}`);
      seen.waiting++;
    } else if (s.phase === "scheduled") {
      if (picture < announced || picture >= starts) throw new Error(`a countdown off the picture: ${JSON.stringify(s)} (${sale.announced_program_date_time}…${sale.starts_program_date_time})`);
      const left = Math.ceil((starts - picture) / 1000);
      const m = /Starts in (\d+):(\d\d)/.exec(s.status);
      if (!m || Math.abs(Number(m[1]) * 60 + Number(m[2]) - left) > 1) throw new Error(`countdown ${s.status}, the picture has ${left} s to go`);
      seen.countdown++;
    } else if (s.phase === "running") {
      if (picture < starts) throw new Error(`opened before the picture reached the start: ${JSON.stringify(s)}`);
      break;
    } else throw new Error(`unexpected ${JSON.stringify(s)}`);
  }
  if (!seen.waiting) throw new Error("the page showed the sale as soon as the live channel told it, not with the picture");
  if (!seen.countdown) throw new Error("no countdown seen");
  seen.behind.sort((x, y) => x - y);
  const median = seen.behind[Math.floor(seen.behind.length / 2)];
  step("countdown", { waiting_samples: seen.waiting, countdown_samples: seen.countdown, picture_behind_server_ms_median: median });
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
