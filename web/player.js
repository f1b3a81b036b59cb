// The video player of the watch page and the studio preview: hls.js (low-latency mode) where
// Media Source Extensions exist, the browser's own HLS otherwise (Safari, iOS). While live it
// keeps near the live edge: hls.js only catches up by itself with more than a second buffered,
// so when the latency drifts past the target we play a little faster, and jump to the live sync
// position when it is far behind (after a stall). Thresholds as measured by bench/llhls.sh.
const DRIFT_S = 0.15;
const JUMP_S = 1;

export function play(video, url, { onLevels, onCue, onLatency, onError } = {}) {
  fitBox(video);
  // The API's links carry the server's public URL; the page plays from its own origin (the CSP
  // allows media from 'self' only).
  const u = new URL(url, location.href);
  url = u.pathname + u.search;
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({
      lowLatencyMode: true,
      // By default hls.js adds a second to its target latency after every stall, for good.
      liveSyncOnStallIncrease: 0,
      liveDurationInfinity: true,
      enableDateRangeMetadataCues: true,
      backBufferLength: 30,
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      onLevels?.(hls.levels.map((l, i) => ({ index: i, label: l.height ? `${l.height}p` : `${Math.round(l.bitrate / 1000)} kb/s` })));
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) setTimeout(() => hls.loadSource(url), 2000);
      else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.startLoad(), 1000);
      else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else onError?.(data.details);
    });
    watchCues(video, onCue);
    hls.loadSource(url);
    hls.attachMedia(video);
    const timer = setInterval(() => {
      const live = hls.levels[hls.currentLevel]?.details?.live;
      if (!live || video.paused) return onLatency?.(null);
      const latency = hls.latency;
      const drift = latency - hls.targetLatency;
      if (drift > JUMP_S && hls.liveSyncPosition) video.currentTime = hls.liveSyncPosition;
      else video.playbackRate = drift > DRIFT_S ? 1.1 : 1;
      onLatency?.(latency);
    }, 500);
    return {
      setLevel: (i) => (hls.currentLevel = i),
      latency: () => hls.latency || 0,
      // The PROGRAM-DATE-TIME of the frame on screen (its fragment's date plus the offset into
      // it), or null before the first fragment plays.
      pictureDate: () => (video.readyState >= 2 ? hls.playingDate : null),
      destroy: () => {
        clearInterval(timer);
        hls.destroy();
      },
    };
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    watchCues(video, onCue);
    video.play().catch(() => {});
    onLevels?.([]);
    return { setLevel: () => {}, latency: () => 0, pictureDate: () => null, destroy: () => video.removeAttribute("src") };
  }
  onError?.("This browser cannot play HLS.");
  return { setLevel: () => {}, latency: () => 0, pictureDate: () => null, destroy: () => {} };
}

/** EXT-X-DATERANGE markers become metadata cues (one per attribute) that turn active as the
 * video reaches them: the product in focus, in sync with the picture. */
function watchCues(video, onCue) {
  if (!onCue) return;
  const seen = new WeakSet();
  const hook = (track) => {
    if (track.kind !== "metadata" || seen.has(track)) return;
    seen.add(track);
    track.mode = "hidden";
    track.addEventListener("cuechange", () => {
      for (const cue of track.activeCues || []) {
        if (cue.value?.key === "X-PRODUCT-ID") onCue({ id: cue.id, productId: cue.value.data });
      }
    });
  };
  for (const t of video.textTracks) hook(t);
  video.textTracks.addEventListener("addtrack", (e) => hook(e.track));
}

/** The video's box takes the picture's shape (a vertical phone stream stands upright instead
 * of sitting in a 16:9 box with bars), following size changes (a rendition switch). */
function fitBox(video) {
  const box = video.parentElement;
  if (!box || video.dataset.fits) return;
  video.dataset.fits = "1";
  video.addEventListener("resize", () => {
    const { videoWidth: w, videoHeight: h } = video;
    if (!w || !h) return;
    box.style.aspectRatio = `${w} / ${h}`;
    box.classList.toggle("portrait", h > w);
  });
}
