// Going live from a phone's browser, in Debian's headless chromium (through Playwright) with a
// fake camera and microphone, driven by tests/go_live.rs. The creator (phone viewport) signs in
// to the studio, follows its "Go live from this phone" link, sees the camera and the microphone
// level, flips the camera, presses Go live (WHIP), sees the WebRTC figures in the studio's health
// panel and goes public; a viewer in a second context
// (own cookies) plays the stream on the watch page with hls.js, follows a product focus and
// reads the host's chat; Stop ends the publish.
//
//   node golive.mjs BASE_URL CREATOR_TOKEN STREAM_ID ARTIFACT_DIR
//
// Reports one JSON object per line on stdout: {"kind":"step","name":…,…} as each step passes,
// {"kind":"console",…} for console errors, failed requests and page exceptions, {"kind":"done"}.
// Any failed expectation throws: the script exits non-zero with the reason on stderr.
//
// Chromium flags: a fake camera and microphone that need no permission prompt; loopback host
// candidates (the test server's ICE address is 127.0.0.1, and Chromium leaves loopback out of
// ICE by default); no mDNS names for host candidates (livefront cannot resolve `.local` names;
// Chromium shows real addresses anyway once camera access is granted, this makes it certain).
import { chromium } from "playwright-core";
import { CHROMIUM } from "./chromium.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, token, streamId, artifacts] = process.argv.slice(2);
if (!base || !token || !streamId || !artifacts) {
  console.error("usage: node golive.mjs BASE_URL CREATOR_TOKEN STREAM_ID ARTIFACT_DIR");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const report = (line) => console.log(JSON.stringify(line));
const step = (name, extra = {}) => report({ kind: "step", name, ...extra });
const PHONE = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };
const MEDIA_TIMEOUT = 60_000;

function expect(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
}

/** Once the publish stopped, a player waiting for the hinted low-latency part (never written)
 * may get a 404 for it: expected. */
let stopped = false;
const hintedPart = /\/ll\/[^/]+\/part\d+\.\d+\.m4s/;
function watchConsole(page, name) {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (stopped && m.text().includes("status of 404")) return;
    report({ kind: "console", page: name, type: m.type(), text: m.text() });
  });
  page.on("response", (r) => {
    if (stopped && r.status() === 404 && hintedPart.test(r.url())) return;
    if (r.status() >= 400) report({ kind: "console", page: name, type: "http", text: `${r.status()} ${r.url()}` });
  });
  page.on("pageerror", (e) => report({ kind: "console", page: name, type: "exception", text: String(e) }));
}

const browser = await chromium.launch({
  ...CHROMIUM,
  args: [
    ...CHROMIUM.args,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
});
try {
  const creator = await browser.newContext(PHONE);
  await creator.grantPermissions(["camera", "microphone"], { origin: base });
  const viewer = await browser.newContext(PHONE);

  // 1. Sign in to the studio, open the stream, follow the go-live link.
  const studio = await creator.newPage();
  watchConsole(studio, "go-live");
  await studio.goto(`${base}/studio`);
  await studio.fill("#token", token);
  await studio.press("#token", "Enter");
  await studio.click(`button[data-stream-id="${streamId}"]`);
  await studio.click("#go-live-link");
  await studio.waitForURL(`**/studio/go-live/${streamId}`);
  step("signed_in");

  // 2. The camera preview runs, vertical by default; the microphone meter moves.
  const playing = () => {
    const v = document.querySelector("#camera");
    return v && v.videoWidth > 0 && !v.paused && v.currentTime > 0.5;
  };
  await studio.waitForFunction(playing, null, { timeout: MEDIA_TIMEOUT });
  const camera = await studio.$eval("#camera", (v) => ({ width: v.videoWidth, height: v.videoHeight, playsinline: v.hasAttribute("playsinline"), muted: v.muted }));
  expect(camera.height > camera.width, `a vertical camera picture: ${JSON.stringify(camera)}`);
  expect(camera.playsinline && camera.muted, `an inline, muted preview: ${JSON.stringify(camera)}`);
  await studio.waitForFunction(() => Number(document.querySelector("#mic-level")?.dataset.peak) > 0.01, null, { timeout: MEDIA_TIMEOUT });
  step("camera_and_microphone", { camera });

  // 3. Flip to the back camera (the fake device has one camera: the same picture comes back).
  await studio.click("#flip-camera");
  await studio.waitForFunction(() => document.querySelector("#camera")?.dataset.facing === "environment");
  await studio.waitForFunction(playing, null, { timeout: MEDIA_TIMEOUT });
  step("camera_flipped");

  // 4. Go live: WHIP from the page; the stream turns live (practice), the button turns to Stop.
  await studio.click("#go-live");
  await studio.waitForSelector("#go-live[data-publishing=true]");
  await studio.waitForSelector("#golive-state[data-state=live]", { timeout: MEDIA_TIMEOUT });
  // What the server sees of the publish (the owner's health block).
  const api = () => creator.request.get(`${base}/api/v1/streams/${streamId}`).then((r) => r.json());
  let health = null;
  for (let i = 0; i < 120; i++) {
    const s = await api();
    if (s.health?.video?.width && s.health?.video?.fps && s.health?.audio?.codec && s.health?.whip?.bitrate_kbps > 0 && s.playback?.ready) {
      health = s.health;
      break;
    }
    await studio.waitForTimeout(500);
  }
  expect(health, "the live stream's health with video, audio and WebRTC figures");
  step("live", { health });

  // The studio's health panel (another tab of the creator) shows the WebRTC figures.
  const desk = await creator.newPage();
  watchConsole(desk, "studio");
  await desk.goto(`${base}/studio`);
  await desk.click(`button[data-stream-id="${streamId}"]`);
  await desk.waitForFunction(() => /^WebRTC · .*loss .* %.* kb\/s$/.test(document.querySelector("#health-link")?.textContent ?? ""), null, { timeout: MEDIA_TIMEOUT });
  step("studio_health", { connection: await desk.textContent("#health-link") });
  await desk.close();

  // 5. Public, and a viewer plays it.
  await studio.click("#mode-toggle");
  await studio.waitForSelector("#golive-state[data-mode=public]");
  await studio.waitForFunction(() => document.querySelector("#golive-status")?.textContent.includes("viewers see you"));
  const watch = await viewer.newPage();
  watchConsole(watch, "watch");
  await watch.goto(`${base}/watch/${streamId}`);
  await watch.waitForFunction(() => document.querySelector("#video")?.currentTime > 1, null, { timeout: MEDIA_TIMEOUT });
  const shown = await watch.$eval("#video", (v) => {
    const box = v.parentElement.getBoundingClientRect();
    return { width: v.videoWidth, height: v.videoHeight, box: [Math.round(box.width), Math.round(box.height)], portrait: v.parentElement.classList.contains("portrait") };
  });
  expect(shown.height > shown.width && shown.box[1] > shown.box[0] && shown.portrait, `the watch page shows the vertical video upright: ${JSON.stringify(shown)}`);
  step("viewer_plays", { shown });

  // 6. The host focuses a product from the phone; the viewer's carousel follows.
  const product = await studio.getAttribute(".focus-btn", "data-product-id");
  await studio.click(`.focus-btn[data-product-id="${product}"]`);
  await studio.waitForSelector(`.focus-btn.focused[data-product-id="${product}"]`);
  await watch.waitForSelector(`#carousel li.focused[data-product-id="${product}"]`, { timeout: MEDIA_TIMEOUT });
  step("carousel_follows");

  // 7. Chat from the phone reaches the viewer.
  await studio.fill("#studio-chat-input", "hello from the phone");
  await studio.press("#studio-chat-input", "Enter");
  await watch.waitForFunction(() => [...document.querySelectorAll("#chat-messages li .text")].some((t) => t.textContent === "hello from the phone"), null, { timeout: 20_000 });
  step("chat");

  // One screen: nothing to scroll on a phone.
  await studio.evaluate(() => scrollTo(0, 0));
  const fits = await studio.evaluate(() => ({ page: document.documentElement.scrollHeight, screen: innerHeight }));
  expect(fits.page <= fits.screen, `the go-live page fits the phone's screen: ${JSON.stringify(fits)}`);
  await studio.screenshot({ path: join(artifacts, "go-live-phone.png") });
  await watch.screenshot({ path: join(artifacts, "watch-vertical.png") });
  step("screenshots");

  // 8. Stop: the session is deleted, the publish ends (the stream ends after the reconnect grace).
  stopped = true;
  await studio.click("#go-live");
  await studio.waitForSelector("#go-live[data-publishing=false]");
  await studio.waitForSelector("#golive-state[data-state=ended]", { timeout: MEDIA_TIMEOUT });
  step("stopped");
  report({ kind: "done" });
} finally {
  await browser.close();
}
