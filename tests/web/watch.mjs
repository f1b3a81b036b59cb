// Plays an HLS URL with hls.js in Debian's headless chromium (through Playwright) and reports,
// one JSON object per line on stdout, what a viewer would see: every 250 ms the playback position
// and state, hls.js errors as they happen, and metadata cues (EXT-X-DATERANGE attributes, one cue
// per attribute) when they become active. Driven by tests/hlsjs.rs.
//
//   node watch.mjs URL SECONDS
//
// Lines: {"kind":"sample","t_ms":…,"position":…,"paused":…,"ready_state":…,"buffered_end":…}
//        {"kind":"error","t_ms":…,"type":…,"details":…,"fatal":…}
//        {"kind":"cue","t_ms":…,"id":…,"key":…,"data":…,"start":…,"end":…,"position":…}
//        {"kind":"done"}
// Samples also carry the playing level's video codec and whether this browser's MSE takes HEVC.
import { chromium } from "playwright-core";
import { CHROMIUM } from "./chromium.mjs";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, seconds] = process.argv.slice(2);
if (!url || !seconds) {
  console.error("usage: node watch.mjs URL SECONDS");
  process.exit(2);
}
const hlsJs = createRequire(import.meta.url).resolve("hls.js/dist/hls.min.js");
const profile = mkdtempSync(join(tmpdir(), "livefront-chromium-"));

const context = await chromium.launchPersistentContext(profile, CHROMIUM);
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.exposeFunction("report", (line) => console.log(JSON.stringify(line)));
  await page.setContent('<video id="v" muted autoplay playsinline></video>');
  await page.addScriptTag({ path: hlsJs });
  await page.evaluate((src) => {
    const video = document.getElementById("v");
    const start = performance.now();
    const t_ms = () => Math.round(performance.now() - start);
    if (!Hls.isSupported()) {
      report({ kind: "error", t_ms: 0, type: "unsupported", details: "MSE/H.264 missing", fatal: true });
      return;
    }
    const hls = new Hls({ liveDurationInfinity: true, enableDateRangeMetadataCues: true });
    const seen = new Set();
    const watchTrack = (track) => {
      if (track.kind !== "metadata") return;
      track.mode = "hidden";
      track.addEventListener("cuechange", () => {
        for (const cue of track.activeCues ?? []) {
          const key = `${cue.id}/${cue.value?.key}`;
          if (seen.has(key)) continue;
          seen.add(key);
          report({
            kind: "cue",
            t_ms: t_ms(),
            id: cue.id,
            key: cue.value?.key,
            data: cue.value?.data,
            start: cue.startTime,
            end: Number.isFinite(cue.endTime) ? cue.endTime : null,
            position: video.currentTime,
          });
        }
      });
    };
    video.textTracks.addEventListener("addtrack", (e) => watchTrack(e.track));
    hls.on(Hls.Events.ERROR, (_, e) =>
      report({ kind: "error", t_ms: t_ms(), type: e.type, details: e.details, fatal: e.fatal }),
    );
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    const hevcMse = MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"');
    setInterval(() => {
      const b = video.buffered;
      report({
        kind: "sample",
        t_ms: t_ms(),
        position: video.currentTime,
        paused: video.paused,
        ready_state: video.readyState,
        buffered_end: b.length ? b.end(b.length - 1) : 0,
        // Low-latency HLS: the playlist's part target (0 without parts) and hls.js's estimate of
        // how far behind the live edge the picture is.
        part_target: hls.levels[hls.currentLevel]?.details?.partTarget ?? 0,
        low_latency: hls.lowLatencyMode,
        latency: Number.isFinite(hls.latency) ? hls.latency : null,
        video_codec: hls.levels[hls.currentLevel]?.videoCodec ?? null,
        hevc_mse: hevcMse,
      });
    }, 250);
  }, url);
  await page.waitForTimeout(Number(seconds) * 1000);
  console.log(JSON.stringify({ kind: "done" }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
