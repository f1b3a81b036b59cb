// Glass-to-screen latency of a stamped live stream (examples/stamp_publisher.rs) in hls.js, in
// Debian's headless chromium through Playwright (tests/web's node_modules). Driven by bench/llhls.sh.
//
//   node bench/llhls-watch.mjs MASTER_URL [MEASURE_S=60] [WARMUP_S=10] [HLSJS_CONFIG_JSON]
//
// On every presented frame (requestVideoFrameCallback) the page draws the frame's top strip into a
// canvas, reads the stamp (the publisher's wall-clock ms), and records Date.now() - stamp (same
// machine, same clock). It keeps near the live edge: when hls.latency > hls.targetLatency + 0.15 s
// it seeks to hls.liveSyncPosition. The first WARMUP_S s are discarded. Prints one JSON object.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..", "tests", "web");
const require = createRequire(join(web, "package.json"));
const { chromium } = require("playwright-core");
const hlsJs = require.resolve("hls.js/dist/hls.min.js");
const { CHROMIUM } = await import(pathToFileURL(join(web, "chromium.mjs")).href);

const [url, measureS = "60", warmupS = "10", configJson = "{}"] = process.argv.slice(2);
// hls.js options on top of { lowLatencyMode: true }, e.g. '{"liveSyncOnStallIncrease":0}'.
const hlsConfig = { lowLatencyMode: true, ...JSON.parse(configJson) };
if (!url) {
  console.error("usage: node llhls-watch.mjs MASTER_URL [MEASURE_S] [WARMUP_S]");
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), "llhls-chromium-"));

const context = await chromium.launchPersistentContext(profile, CHROMIUM);
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.setContent('<video id="v" muted autoplay playsinline></video>');
  await page.addScriptTag({ path: hlsJs });
  await page.evaluate(([src, config]) => {
    // The layout of examples/stamp_publisher.rs.
    const CELL = 32, COLS = 20, ROWS = 4, TIME_BITS = 44;
    const START = [1, 0, 1, 0], END = [0, 1, 0, 1, 0, 1, 0, 1];
    const CELLS = START.length + TIME_BITS + 8 + END.length;
    const crc8 = (ms) => {
      let crc = 0;
      for (let i = 5; i >= 0; i--) {
        crc ^= Number((ms >> BigInt(8 * i)) & 0xffn);
        for (let b = 0; b < 8; b++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
      }
      return crc;
    };
    const video = document.getElementById("v");
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    // Luma of a cell: the mean of its central 8×8 px, scaled from the video to the 640 px grid.
    const readStamp = () => {
      const scale = video.videoWidth / (COLS * CELL);
      const w = Math.round(COLS * CELL * scale), h = Math.round(ROWS * CELL * scale);
      if (!w || !h) return null;
      if (canvas.width !== w || canvas.height !== h) [canvas.width, canvas.height] = [w, h];
      ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      const bits = [];
      for (let i = 0; i < CELLS; i++) {
        const cx = Math.round(((i % COLS) * CELL + CELL / 2) * scale);
        const cy = Math.round((Math.floor(i / COLS) * CELL + CELL / 2) * scale);
        let sum = 0;
        for (let dy = -4; dy < 4; dy++)
          for (let dx = -4; dx < 4; dx++) {
            const o = ((cy + dy) * w + cx + dx) * 4;
            sum += 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2];
          }
        bits.push(sum / 64 > 128 ? 1 : 0);
      }
      if (START.some((b, i) => bits[i] !== b)) return null;
      if (END.some((b, i) => bits[CELLS - END.length + i] !== b)) return null;
      let ms = 0n, crc = 0;
      for (let i = 0; i < TIME_BITS; i++) ms = (ms << 1n) | BigInt(bits[4 + i]);
      for (let i = 0; i < 8; i++) crc = (crc << 1) | bits[4 + TIME_BITS + i];
      return crc8(ms) === crc ? Number(ms) : null;
    };
    // The low 44 bits of the publisher's clock: add back what did not travel.
    const unwrap = (ms) => {
      const high = BigInt(Date.now()) & ~((1n << BigInt(TIME_BITS)) - 1n);
      return Number(high) + ms;
    };

    window.results = { samples: [], undecodable: 0, frames: 0, latency: [], target: [], seeks: 0, errors: [] };
    window.measuring = false;
    const r = window.results;
    const hls = new Hls(config);
    hls.on(Hls.Events.ERROR, (_, e) => {
      if (r.errors.length < 50) r.errors.push(`${e.type}/${e.details}${e.fatal ? " (fatal)" : ""}`);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    const onFrame = () => {
      const now = Date.now();
      const stamp = readStamp();
      if (window.measuring) {
        r.frames++;
        if (stamp === null) r.undecodable++;
        else r.samples.push(now - unwrap(stamp));
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    let lastSeek = 0;
    setInterval(() => {
      if (!Number.isFinite(hls.latency) || !Number.isFinite(hls.targetLatency)) return;
      if (window.measuring) {
        r.latency.push(hls.latency);
        r.target.push(hls.targetLatency);
      }
      // At most one seek every 2 s: the latency estimate settles after a seek.
      const late = hls.latency > hls.targetLatency + 0.15;
      if (late && Number.isFinite(hls.liveSyncPosition) && performance.now() - lastSeek > 2000) {
        lastSeek = performance.now();
        video.currentTime = hls.liveSyncPosition;
        if (window.measuring) r.seeks++;
      }
    }, 250);
    window.partTarget = () => hls.levels[hls.currentLevel]?.details?.partTarget ?? 0;
  }, [url, hlsConfig]);
  await page.waitForTimeout(Number(warmupS) * 1000);
  await page.evaluate(() => (window.measuring = true));
  await page.waitForTimeout(Number(measureS) * 1000);
  const r = await page.evaluate(() => {
    const v = document.getElementById("v");
    return { ...window.results, part_target: window.partTarget(), size: `${v.videoWidth}x${v.videoHeight}` };
  });

  const q = (xs, p) => {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  const round3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  const ms = r.samples;
  console.log(
    JSON.stringify({
      measure_s: Number(measureS),
      warmup_s: Number(warmupS),
      frames: r.frames,
      count: ms.length,
      undecodable: r.undecodable,
      median_ms: q(ms, 0.5),
      p10_ms: q(ms, 0.1),
      p90_ms: q(ms, 0.9),
      min_ms: ms.length ? Math.min(...ms) : null,
      max_ms: ms.length ? Math.max(...ms) : null,
      hlsjs_latency_median_s: round3(q(r.latency, 0.5)),
      hlsjs_target_latency_median_s: round3(q(r.target, 0.5)),
      part_target_s: r.part_target,
      video_size: r.size,
      hlsjs_config: hlsConfig,
      seeks: r.seeks,
      errors: r.errors,
    }),
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
