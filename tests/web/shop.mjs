// Issue 23's shop hooks in Debian's headless chromium (through Playwright), driven by
// tests/shop_web.rs: a signed-in viewer's bell, a promo redeemed with one tap, follow and
// "remind me" from the watch page, add to cart firing `livefront:add-to-cart`; the reminder and
// an announcement arriving live in the bell and as browser notifications; and the embeddable
// player in an iframe of another origin (a second loopback server, allowed to frame it) posting
// `livefront:add-to-cart` to the page around it, while the watch page refuses framing, and a
// third origin (not allowed) cannot frame the player.
//
//   node shop.mjs BASE_URL CREATOR_TOKEN VIEWER_TOKEN STREAM_ID PRODUCT_ID SHOP_URL OTHER_URL
//
// Reports one JSON object per line on stdout: {"kind":"step","name":…}, console errors as
// {"kind":"console",…}, then {"kind":"done"}. Any failed expectation throws (exit non-zero).
import { chromium } from "playwright-core";
import { CHROMIUM } from "./chromium.mjs";

const [base, creatorToken, viewerToken, streamId, productId, shopUrl, otherUrl] = process.argv.slice(2);
if (!base || !creatorToken || !viewerToken || !streamId || !productId || !shopUrl || !otherUrl) {
  console.error("usage: node shop.mjs BASE_URL CREATOR_TOKEN VIEWER_TOKEN STREAM_ID PRODUCT_ID SHOP_URL OTHER_URL");
  process.exit(2);
}
const report = (line) => console.log(JSON.stringify(line));
const step = (name, extra = {}) => report({ kind: "step", name, ...extra });
const WAIT = 60_000;

function expect(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
}

function watchConsole(page, name) {
  page.on("console", (m) => m.type() === "error" && report({ kind: "console", page: name, text: m.text() }));
  page.on("pageerror", (e) => report({ kind: "console", page: name, text: String(e) }));
}

async function creatorApi(method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${creatorToken}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(r.ok, `${method} ${path}: ${r.status}`);
  return r.json();
}

const browser = await chromium.launch(CHROMIUM);
try {
  // 1. The viewer signs in: the bell shows in the header.
  const viewer = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true });
  await viewer.grantPermissions(["notifications"], { origin: base });
  await viewer.addInitScript(() => {
    window.__carts = [];
    window.__notified = [];
    window.addEventListener("livefront:add-to-cart", (e) => window.__carts.push(e.detail));
    // Record what the page shows as browser notifications (the real API stays underneath).
    const Real = window.Notification;
    if (Real) {
      window.Notification = class extends Real {
        constructor(title, options) {
          super(title, options);
          window.__notified.push(options?.body || title);
        }
      };
      Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
      window.Notification.requestPermission = (...a) => Real.requestPermission(...a);
    }
  });
  const page = await viewer.newPage();
  watchConsole(page, "watch");
  await page.goto(`${base}/`);
  const signedIn = await page.evaluate(async (token) => (await fetch("/api/v1/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) })).status, viewerToken);
  expect(signedIn === 201, `signed in, got ${signedIn}`);
  await page.goto(`${base}/watch/${streamId}`);
  await page.waitForSelector("#bell #bell-count");
  expect((await page.textContent("#bell-count")) === "0", "no notifications yet");
  step("bell_shown");

  // 2. One tap redeems the promo code and shows the discount.
  await page.click("#promo-redeem");
  await page.waitForFunction(() => document.querySelector("#promo-status")?.textContent.includes("10% off"), null, { timeout: WAIT });
  step("promo_redeemed", { status: await page.textContent("#promo-status") });

  // 3. Follow the creator and ask to be reminded, from the watch page.
  await page.click("#follow");
  await page.waitForFunction(() => document.querySelector("#follow")?.textContent.startsWith("Following"), null, { timeout: WAIT });
  step("followed");
  await page.click("#remind");
  await page.waitForFunction(() => document.querySelector("#remind")?.textContent === "Reminder set", null, { timeout: WAIT });
  step("reminder_set");

  // 4. Add to cart: the page fires livefront:add-to-cart with the product, stream, attribution
  // and the viewer's code.
  await page.click(`#carousel li[data-product-id="${productId}"] button.cart`);
  await page.waitForFunction(() => window.__carts.length === 1, null, { timeout: WAIT });
  const cart = (await page.evaluate(() => window.__carts))[0];
  expect(cart.product.id === productId && cart.stream === streamId, `the event names the product and stream: ${JSON.stringify(cart)}`);
  expect(cart.promo_code === "SPRING10" && cart.attribution === "alice-20", `attribution and code: ${JSON.stringify(cart)}`);
  step("cart_event");

  // 5. The creator schedules another stream: followers are told, and the bell counts it live.
  await creatorApi("POST", "/api/v1/streams", { title: "Next week", mode: "public", scheduled_at: new Date(Date.now() + 7 * 86400_000).toISOString() });
  await page.waitForFunction(() => [...document.querySelectorAll("#bell-list li")].some((li) => li.textContent.includes("scheduled: Next week")) && Number(document.querySelector("#bell-count")?.textContent) >= 1, null, { timeout: WAIT });
  step("bell_live");

  // 6. At the scheduled time the reminder arrives: in the bell and as a browser notification.
  await page.waitForFunction(() => [...document.querySelectorAll("#bell-list li")].some((li) => li.textContent.startsWith("Starting now")) && document.querySelector("#bell-count")?.textContent === "2", null, { timeout: WAIT });
  await page.waitForFunction(() => window.__notified.some((t) => t.startsWith("Starting now")), null, { timeout: WAIT });
  step("reminder_notified", { notified: await page.evaluate(() => window.__notified) });

  // 7. The feed lists both; "Mark all read" clears the count.
  await page.click("#bell");
  await page.waitForFunction(() => document.querySelectorAll("#bell-list li.unread").length === 2, null, { timeout: WAIT });
  await page.click("#bell-read");
  await page.waitForFunction(() => document.querySelector("#bell-count")?.textContent === "0", null, { timeout: WAIT });
  step("marked_read");

  // 8. The embeddable player inside a shop's page of another origin posts add-to-cart to it;
  // the watch page in the same shop page is refused.
  const shop = await browser.newContext();
  const host = await shop.newPage();
  await host.goto(shopUrl);
  const player = host.frames().find((f) => f.url().includes("/embed/"));
  expect(player, `the player frame: ${host.frames().map((f) => f.url())}`);
  await player.waitForSelector(`#carousel li[data-product-id="${productId}"] button.cart`, { timeout: WAIT });
  await player.click(`#carousel li[data-product-id="${productId}"] button.cart`);
  await host.waitForFunction(() => window.__messages.length > 0, null, { timeout: WAIT });
  const message = (await host.evaluate(() => window.__messages))[0];
  expect(message.origin === new URL(base).origin, `posted by the player's origin: ${JSON.stringify(message)}`);
  expect(message.data.type === "livefront:add-to-cart" && message.data.product.id === productId && message.data.stream === streamId, `the add-to-cart message: ${JSON.stringify(message)}`);
  step("embed_posts", { attribution: message.data.attribution });

  const watchFrame = host.frames().find((f) => f !== player && f !== host.mainFrame());
  await watchFrame.waitForLoadState();
  let framedApp = 0;
  try {
    framedApp = await watchFrame.locator("main#app").count();
  } catch {
    framedApp = 0;
  }
  expect(framedApp === 0, "the watch page refuses to be framed");
  step("watch_refuses_framing");

  // 9. A site that is not allowed cannot frame the player either.
  const other = await shop.newPage();
  await other.goto(otherUrl);
  const otherFrame = other.frames().find((f) => f !== other.mainFrame());
  await otherFrame.waitForLoadState();
  let otherApp = 0;
  try {
    otherApp = await otherFrame.locator("main#app").count();
  } catch {
    otherApp = 0;
  }
  expect(otherApp === 0, "the player refuses origins it does not allow");
  step("embed_refuses_other_origins");
  report({ kind: "done" });
} finally {
  await browser.close();
}
