// The web story of issue 8 in Debian's headless chromium (through Playwright), driven by
// tests/web_story.rs: a creator in the studio and a viewer on a phone-sized screen, each in their
// own browser context (own cookies).
//
//   node story.mjs BASE_URL CREATOR_TOKEN CREATOR_HANDLE ADMIN_TOKEN ARTIFACT_DIR
//
// Reports one JSON object per line on stdout:
//   {"kind":"ingest","server":…,"key":…,"stream_id":…}  read from the studio page; the Rust test
//                                                       then starts ffmpeg publishing to it
//   {"kind":"step","name":…,…}                           each step of the story as it passes
//   {"kind":"console","page":…,"type":…,"text":…}        console errors and uncaught exceptions
//   {"kind":"done"}
// Any failed expectation throws: the script exits non-zero with the reason on stderr.
import { chromium } from "playwright-core";
import { CHROMIUM } from "./chromium.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, token, handle, adminToken, artifacts] = process.argv.slice(2);
if (!base || !token || !handle || !adminToken || !artifacts) {
  console.error("usage: node story.mjs BASE_URL CREATOR_TOKEN CREATOR_HANDLE ADMIN_TOKEN ARTIFACT_DIR");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const report = (line) => console.log(JSON.stringify(line));
const step = (name, extra = {}) => report({ kind: "step", name, ...extra });
const PHONE = { width: 390, height: 844 };
const MEDIA_TIMEOUT = 60_000;

function expect(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
}

/** Console errors and page exceptions, except while a 404 is expected. */
let expecting404 = false;
/** Once the host ends the stream, a player waiting for the hinted low-latency part (which will
 * never be written) gets a 404 for it: expected. Every other 404 is still caught by URL below;
 * the console's own line for a failed load has no URL, so those lines are left to that check. */
let streamEnded = false;
const hintedPart = /\/ll\/[^/]+\/part\d+\.\d+\.m4s/;
function watchConsole(page, name) {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expecting404 && m.text().includes("404")) return;
    if (streamEnded && m.text().includes("status of 404")) return;
    report({ kind: "console", page: name, type: m.type(), text: m.text() });
  });
  page.on("response", (r) => {
    if (streamEnded && r.status() === 404 && hintedPart.test(r.url())) return;
    if (r.status() >= 400 && !(expecting404 && r.status() === 404)) report({ kind: "console", page: name, type: "http", text: `${r.status()} ${r.url()}` });
  });
  if (process.env.STORY_DEBUG) page.on("console", (m) => report({ kind: "debug", page: name, type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => report({ kind: "console", page: name, type: "exception", text: String(e) }));
}

const browser = await chromium.launch(CHROMIUM);
try {
  const creator = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await browser.newContext({ viewport: PHONE, hasTouch: true });
  await creator.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  // The creator token must never travel in a URL (only in the sign-in body, then as a cookie).
  const leaks = [];
  for (const ctx of [creator, viewer]) ctx.on("request", (r) => r.url().includes(token) && leaks.push(r.url()));

  // 1. The creator signs in; the token goes into a form, never into a URL.
  const studio = await creator.newPage();
  watchConsole(studio, "studio");
  await studio.goto(`${base}/studio`);
  await studio.fill("#token", token);
  await studio.press("#token", "Enter");
  await studio.waitForSelector("#create-stream");
  const cookies = await creator.cookies(base);
  const session = cookies.find((c) => c.name === "lf_session");
  expect(session && session.httpOnly && session.sameSite === "Strict", `an HttpOnly SameSite=Strict session cookie: ${JSON.stringify(cookies)}`);
  step("signed_in");

  // 2. Two products in the catalog, then a livestream with both in its carousel.
  const products = [
    ["LIP-1", "Velvet lipstick", "19.99"],
    ["PAL-2", "<b>Glow</b> palette", "34.50"],
  ];
  for (const [i, [sku, title, price]] of products.entries()) {
    await studio.fill("#product-form input[name=sku]", sku);
    await studio.fill("#product-form input[name=title]", title);
    await studio.fill("#product-form input[name=price]", price);
    await studio.click("#product-form button[type=submit]");
    await studio.waitForFunction((n) => document.querySelectorAll("#new-products input[type=checkbox]").length === n, i + 1);
  }
  await studio.fill("#new-title", "Spring beauty haul");
  await studio.fill("#new-category", "beauty");
  for (const box of await studio.$$("#new-products input[type=checkbox]")) await box.check();
  await studio.click("#create-stream button[type=submit]");
  await studio.waitForSelector("#ingest-server");
  const focusButtons = await studio.$$eval(".focus-btn", (bs) => bs.map((b) => ({ id: b.dataset.productId, text: b.textContent })));
  expect(focusButtons.length === 2, `two focus buttons: ${JSON.stringify(focusButtons)}`);
  expect(focusButtons[1].text.includes("<b>Glow</b>"), "a product title with markup shows as text");

  // 3. The RTMP server and key, read from the page (the key after "Reveal").
  expect((await studio.getAttribute("#ingest-key", "type")) === "password", "the key is hidden at first");
  await studio.click("#reveal-key");
  const server = await studio.inputValue("#ingest-server");
  const key = await studio.inputValue("#ingest-key");

  // Simulcast: add a destination, choose it (the checklist names it), then leave it out again so
  // nothing is pushed anywhere when the story goes public. Its key is never shown back.
  await studio.fill("#destination-form input[aria-label='Destination name']", "My YouTube");
  await studio.fill("#destination-form input[aria-label='Ingest URL']", "rtmp://93.184.216.34/live2");
  await studio.fill("#destination-form input[aria-label='Destination stream key']", "storykey_0123456789wxyz");
  await studio.click("#destination-form button[type=submit]");
  await studio.waitForSelector("#destination-list li[data-state='not chosen']");
  expect(!(await studio.content()).includes("storykey_0123456789"), "the destination key is not shown back");
  await studio.check("#destination-list li input[type=checkbox]");
  await studio.waitForSelector("#destination-list li[data-state=stopped]");
  await studio.waitForFunction(() => document.querySelector("#go-live-where")?.textContent.includes("My YouTube"));
  await studio.uncheck("#destination-list li input[type=checkbox]");
  await studio.waitForSelector("#destination-list li[data-state='not chosen']");
  const streamId = (await studio.getAttribute("a[href^='/watch/']", "href")).split("/")[2];
  report({ kind: "ingest", server, key, stream_id: streamId });

  // 4. The practice preview plays and the health panel fills in (ffmpeg publishes now).
  await studio.waitForFunction(() => document.querySelector("#preview")?.currentTime > 1, null, { timeout: MEDIA_TIMEOUT });
  await studio.waitForFunction(() => document.querySelector("#health-fps")?.textContent.includes("fps"), null, { timeout: MEDIA_TIMEOUT });
  await studio.waitForFunction(() => document.querySelectorAll("#bitrate-chart polyline").length === 1 && document.querySelector("#bitrate-chart polyline").getAttribute("points").includes(" "), null, { timeout: MEDIA_TIMEOUT });
  step("preview_plays", { fps: await studio.textContent("#health-fps"), bitrate: await studio.textContent("#health-bitrate") });

  // 5. A viewer is told "not found" while it is practice.
  const watch = await viewer.newPage();
  watchConsole(watch, "watch");
  expecting404 = true;
  const hidden = await watch.goto(`${base}/watch/${streamId}`);
  expecting404 = false;
  expect(hidden.status() === 404, `404 for the practice stream, got ${hidden.status()}`);
  expect((await watch.textContent("h1")) === "Not found", "a not-found page");
  step("viewer_not_found");

  // 6. Go public; the viewer's page plays within 10 s.
  await studio.click("#mode-toggle");
  await studio.waitForSelector("#stream-status[data-mode=public]");
  const clicked = Date.now();
  const open = await watch.goto(`${base}/watch/${streamId}`);
  expect(open.status() === 200, `the public watch page, got ${open.status()}`);
  await watch.waitForFunction(() => document.querySelector("#video")?.currentTime > 0.5, null, { timeout: 10_000 });
  step("viewer_plays", { after_ms: Date.now() - clicked });

  // 7. The creator focuses a product; the viewer's carousel highlights it.
  const focused = focusButtons[0].id;
  await studio.click(`.focus-btn[data-product-id="${focused}"]`);
  await watch.waitForSelector(`#carousel li.focused[data-product-id="${focused}"]`, { timeout: MEDIA_TIMEOUT });
  step("carousel_follows", { source: await watch.getAttribute("#carousel", "data-focus-source") });

  // 8. Chat both ways; a <script> message renders as text.
  await watch.fill("#chat-handle", "viewer_one");
  await watch.press("#chat-handle", "Enter");
  await watch.waitForSelector("#chat-input");
  await watch.fill("#chat-input", "hello from the viewer");
  await watch.press("#chat-input", "Enter");
  await studio.waitForFunction(() => [...document.querySelectorAll("#studio-chat li .text")].some((t) => t.textContent === "hello from the viewer"), null, { timeout: 20_000 });
  await studio.fill("#studio-chat-input", "hello from the host");
  await studio.press("#studio-chat-input", "Enter");
  await watch.waitForFunction(() => [...document.querySelectorAll("#chat-messages li .text")].some((t) => t.textContent === "hello from the host"), null, { timeout: 20_000 });
  const evil = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">';
  await watch.fill("#chat-input", evil);
  await watch.press("#chat-input", "Enter");
  for (const page of [watch, studio]) {
    const list = page === watch ? "#chat-messages" : "#studio-chat";
    await page.waitForFunction(([l, m]) => [...document.querySelectorAll(`${l} li .text`)].some((t) => t.textContent === m), [list, evil], { timeout: 20_000 });
    const safe = await page.evaluate((l) => window.pwned === undefined && !document.querySelector(`${l} script, ${l} img`), list);
    expect(safe, "the <script> message is text, nothing ran");
  }
  step("chat_both_ways");

  // Moderation: the host deletes the <script> message; it leaves the viewer's chat too.
  await studio.click("#studio-chat li:last-child button:text('Delete')");
  await watch.waitForFunction((m) => ![...document.querySelectorAll("#chat-messages li .text")].some((t) => t.textContent === m), evil, { timeout: 20_000 });
  step("message_deleted");

  // A live promo code: the viewer's banner shows it with a copy button.
  await studio.fill("#promo-form input[aria-label=Code]", "SPRING10");
  await studio.fill("#promo-form input[aria-label=Description]", "10% off the palette");
  await studio.fill("#promo-form input[aria-label=Discount]", "10%");
  await studio.click("#promo-form button[type=submit]");
  await watch.waitForFunction(() => document.querySelector("#promo-code")?.textContent === "SPRING10", null, { timeout: 20_000 });
  expect(await watch.isVisible("#promo button"), "a copy button on the promo banner");
  step("promo_banner");

  // The viewer reports the stream; the admin sees it in the queue.
  await watch.click("details.report summary");
  await watch.fill("#report-reason", "<i>misleading</i> claims");
  await watch.press("#report-reason", "Enter");
  await watch.waitForFunction(() => document.querySelector("#report-status")?.textContent.startsWith("Reported"));
  const admin = await browser.newContext({ viewport: PHONE });
  const queue = await admin.newPage();
  watchConsole(queue, "admin");
  await queue.goto(`${base}/admin`);
  await queue.fill("#token", adminToken);
  await queue.press("#token", "Enter");
  await queue.waitForSelector("#reports li.report");
  const reported = await queue.textContent("#reports li.report");
  expect(reported.includes(streamId) && reported.includes("<i>misleading</i> claims"), `the report in the queue: ${reported}`);
  await queue.screenshot({ path: join(artifacts, "admin-phone.png") });
  await admin.close();
  step("reported_to_admin");

  // Phone screenshots: watch, storefront (after following), home, studio.
  await watch.evaluate(() => {
    document.activeElement?.blur();
    document.querySelector("details.report")?.removeAttribute("open");
    window.scrollTo(0, 0);
  });
  await watch.screenshot({ path: join(artifacts, "watch-phone.png") });
  const front = await viewer.newPage();
  watchConsole(front, "storefront");
  await front.goto(`${base}/@${handle}`);
  await front.waitForSelector("#followers");
  await front.click("#follow");
  await front.waitForFunction(() => document.querySelector("#followers").textContent.startsWith("1 "));
  expect((await front.textContent("#follow")).startsWith("Following"), "the follow button says so");
  await front.screenshot({ path: join(artifacts, "storefront-phone.png"), fullPage: true });
  await front.goto(`${base}/`);
  await front.waitForSelector("section.row");
  await front.screenshot({ path: join(artifacts, "home-phone.png"), fullPage: true });
  await front.close();
  const phoneStudio = await creator.newPage();
  await phoneStudio.setViewportSize(PHONE);
  watchConsole(phoneStudio, "studio-phone");
  await phoneStudio.goto(`${base}/studio`);
  await phoneStudio.click(`[data-stream-id="${streamId}"]`);
  await phoneStudio.waitForFunction(() => document.querySelector("#health-fps")?.textContent.includes("fps"), null, { timeout: MEDIA_TIMEOUT });
  await phoneStudio.waitForFunction(() => document.querySelector("#preview")?.currentTime > 0.5, null, { timeout: MEDIA_TIMEOUT });
  await phoneStudio.screenshot({ path: join(artifacts, "studio-phone.png") });
  await phoneStudio.close();
  await studio.screenshot({ path: join(artifacts, "studio-desktop.png"), fullPage: true });
  step("screenshots");
  // The studio's live numbers (from the analytics series): the audience now and the chat rate.
  await studio.waitForFunction(() => /\d/.test(document.querySelector("#stat-viewers")?.textContent ?? "") && /a minute/.test(document.querySelector("#stat-chat-rate")?.textContent ?? ""), null, { timeout: MEDIA_TIMEOUT });

  // 9. The creator ends the stream; the viewer's page becomes a replay with chapters.
  streamEnded = true;
  await studio.click("#end-stream");
  await watch.waitForSelector("#chapters button.chapter", { timeout: MEDIA_TIMEOUT });
  const chapters = await watch.$$eval("#chapters button.chapter", (bs) => bs.map((b) => ({ product_id: b.dataset.productId, text: b.textContent })));
  expect(chapters.some((c) => c.product_id === focused), `a chapter for the focused product: ${JSON.stringify(chapters)}`);
  await watch.waitForFunction(() => document.querySelector("#video")?.currentTime > 0.5, null, { timeout: MEDIA_TIMEOUT });
  // Clicking a chapter seeks the replay to it (the video was playing from the start).
  await watch.waitForFunction(() => document.querySelector("#video").currentTime > 2, null, { timeout: MEDIA_TIMEOUT });
  await watch.evaluate(() => (document.querySelector("#video").currentTime = 0));
  await watch.click("#chapters button.chapter");
  const chapterStart = await watch.evaluate(async (id) => (await (await fetch(`/api/v1/streams/${id}/chapters`)).json()).chapters[0].start_s, streamId);
  await watch.waitForFunction((t) => Math.abs(document.querySelector("#video").currentTime - t) < 3, chapterStart, { timeout: 10_000 });
  step("replay_with_chapters", { chapters, chapter_start_s: chapterStart, position: await watch.evaluate(() => document.querySelector("#video").currentTime) });
  await studio.waitForSelector("#recording-link", { timeout: MEDIA_TIMEOUT });
  step("recording_ready", { href: await studio.getAttribute("#recording-link", "href") });
  // 10. The studio's report: viewers over time drawn by uPlot (a canvas), the per-product table.
  await studio.waitForSelector("#viewers-chart canvas", { timeout: MEDIA_TIMEOUT });
  await studio.waitForSelector(`#report-products tr[data-product-id="${focused}"]`, { timeout: MEDIA_TIMEOUT });
  const peak = await studio.textContent("#report-summary");
  await studio.locator("#report").screenshot({ path: join(artifacts, "studio-report.png") });
  step("report_chart", { summary: peak });
  await watch.screenshot({ path: join(artifacts, "replay-phone.png") });
  expect(leaks.length === 0, `no URL carries the creator token: ${leaks}`);
  step("token_never_in_urls");
  report({ kind: "done" });
} finally {
  await browser.close();
}
