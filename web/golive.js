// /studio/go-live/{id}: go live from a phone's browser, one screen, thumbs only. The camera
// preview (front or back camera, vertical 9:16 or landscape), the microphone level, "Go live"
// (WHIP: the camera and microphone over WebRTC into the stream's `ingest.whip` with the stream
// key as bearer token), the practice/public switch, the product focus buttons and the chat.
//
// WHIP here: one POST of the complete offer (livefront takes no trickle ICE, so the page waits
// for ICE gathering first), the answer back, DELETE of the session (`Location`) on Stop. Video
// prefers H.264 constrained baseline (Safari/iOS encode it in hardware, and livefront passes
// H.264 through without transcoding), audio Opus.
import { el, $, api } from "/assets/common.js";
import { creatorSession, focusControls, hostChat } from "/assets/host.js";

const id = decodeURIComponent(location.pathname.split("/")[3] || "");
const app = $("#app");
const POLL_MS = 2000;
/** Longest wait for ICE gathering before the offer goes out with what it has. */
const GATHER_MS = 5000;
/** The encoder's ceiling: a phone uplink, and the top of the default ladder. */
const MAX_VIDEO_BITRATE = 2_500_000;
const SHAPES = {
  vertical: { width: 720, height: 1280, aspectRatio: 9 / 16 },
  landscape: { width: 1280, height: 720, aspectRatio: 16 / 9 },
};

const st = { stream: null, camera: null, facing: "user", shape: "vertical", pc: null, session: null, meter: null, timer: null };

const video = el("video", { id: "camera", muted: true, autoplay: true, playsinline: true });
video.muted = true;
const stateBadge = el("span", { id: "golive-state", class: "badge" }, "…");
const status = el("p", { id: "golive-status", class: "hint", role: "status" });
const level = el("meter", { id: "mic-level", min: 0, max: 1, low: 0.6, high: 0.85, optimum: 0.3, value: 0, "aria-label": "Microphone level" });
const flipButton = el("button", { type: "button", id: "flip-camera" }, "Flip camera");
const shapeSelect = el("select", { id: "shape", "aria-label": "Picture shape" }, el("option", { value: "vertical" }, "Vertical"), el("option", { value: "landscape" }, "Landscape"));
const goButton = el("button", { type: "button", id: "go-live", class: "go" }, "Go live");
const modeButton = el("button", { type: "button", id: "mode-toggle" }, "Go public");
const numbers = el("span", { id: "golive-numbers", class: "pill" }, "");

async function main() {
  const session = await creatorSession(app, main);
  if (!session) return;
  try {
    st.stream = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  } catch {
    app.replaceChildren(el("h1", { class: "notfound" }, "Not found"));
    return;
  }
  const s = st.stream;
  if (!s.stream_key || !s.ingest?.whip) {
    app.replaceChildren(el("h1", { class: "notfound" }, "Not your stream"), el("p", {}, "Only the stream's creator can go live with it."));
    return;
  }
  document.title = `Go live: ${s.title} · livefront`;
  const products = (await api("GET", `/api/v1/streams/${encodeURIComponent(id)}/products`).catch(() => ({ products: [] }))).products;
  const focusing = focusControls(id, products);
  focusing.buttons.classList.add("carousel");
  const chat = hostChat(id, (ev) => ev.type === "stream_state" && refresh());

  flipButton.addEventListener("click", () => {
    st.facing = st.facing === "user" ? "environment" : "user";
    startCamera();
  });
  shapeSelect.addEventListener("change", () => {
    st.shape = shapeSelect.value;
    startCamera();
  });
  goButton.addEventListener("click", () => (st.pc ? stop() : goLive()));
  modeButton.addEventListener("click", async () => {
    const next = st.stream.mode === "public" ? "practice" : "public";
    try {
      await api("PUT", `/api/v1/streams/${encodeURIComponent(id)}/mode`, { mode: next });
      st.stream.mode = next;
      paint();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  // A tab closed while live: end the session rather than leave it to the server's timeout.
  addEventListener("pagehide", () => st.session && fetch(st.session, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${st.stream.stream_key}` } }));

  app.replaceChildren(
    el(
      "div",
      { class: "golive" },
      el("div", { class: "golive-head" }, el("h1", { id: "stream-title" }, s.title), stateBadge, numbers),
      el("div", { class: "camera-box", "data-shape": st.shape }, video, el("div", { class: "camera-tools" }, level, flipButton, shapeSelect)),
      el("div", { class: "golive-controls" }, goButton, modeButton),
      status,
      focusing.buttons,
      focusing.status,
      el("div", { class: "golive-chat" }, chat.list, chat.form, chat.status),
    ),
  );
  paint();
  await startCamera();
  refresh();
  st.timer = setInterval(refresh, POLL_MS);
}

/** Opens the camera and microphone for the chosen side and shape; while live the new track
 * replaces the one being sent, without a new session. */
async function startCamera() {
  const shape = SHAPES[st.shape];
  $(".camera-box")?.setAttribute("data-shape", st.shape);
  // Phones open one camera at a time: let go of the old one first.
  st.camera?.getTracks().forEach((t) => t.stop());
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: st.facing }, width: { ideal: shape.width }, height: { ideal: shape.height }, aspectRatio: { ideal: shape.aspectRatio }, frameRate: { ideal: 30, max: 30 } },
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (err) {
    st.camera = null;
    status.textContent = navigator.mediaDevices ? `The camera did not open: ${err.message}` : "The camera needs HTTPS (or localhost).";
    return;
  }
  st.camera = media;
  video.srcObject = media;
  video.play().catch(() => {});
  const track = media.getVideoTracks()[0];
  const size = track?.getSettings();
  video.dataset.facing = st.facing;
  if (size?.width) status.textContent = `Camera ${size.width}×${size.height}`;
  if (st.pc) {
    for (const sender of st.pc.getSenders()) {
      const next = media.getTracks().find((t) => t.kind === sender.track?.kind);
      if (next) await sender.replaceTrack(next);
    }
  }
  meter(media);
}

/** The microphone level (RMS of the last samples) on the meter, each frame. */
function meter(media) {
  st.meter?.close();
  if (!media.getAudioTracks().length || !window.AudioContext) return;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(media).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let peak = 0;
  const tick = () => {
    if (ctx.state === "closed") return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const x of samples) sum += x * x;
    // RMS scaled so that speech sits mid-meter.
    const value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    level.value = value;
    peak = Math.max(peak, value);
    level.dataset.peak = peak.toFixed(3);
    requestAnimationFrame(tick);
  };
  tick();
  // Browsers start audio only after a tap: resume on the first one.
  if (ctx.state === "suspended") addEventListener("pointerdown", () => ctx.resume(), { once: true });
  st.meter = ctx;
}

/** Puts H.264 (constrained baseline first, packetization mode 1) or Opus ahead of the rest. */
function prefer(transceiver, kind) {
  if (!transceiver.setCodecPreferences || !RTCRtpSender.getCapabilities) return;
  const codecs = RTCRtpSender.getCapabilities(kind)?.codecs ?? [];
  const rank = (c) => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = c.sdpFmtpLine ?? "";
    if (kind === "audio") return mime === "audio/opus" ? 0 : 1;
    if (mime !== "video/h264") return 3;
    if (!fmtp.includes("packetization-mode=1")) return 2;
    return /profile-level-id=42e0/i.test(fmtp) ? 0 : 1;
  };
  const sorted = codecs.map((c, i) => [rank(c), i, c]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
  try {
    transceiver.setCodecPreferences(sorted);
  } catch {
    /* the browser's own order then */
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);
  });
}

/** The stream's WHIP endpoint on this page's origin (the API's URLs carry the server's public
 * URL; the page may only connect to its own origin). */
function whipPath() {
  const u = new URL(st.stream.ingest.whip, location.href);
  return u.pathname + u.search;
}

async function goLive() {
  if (!st.camera) await startCamera();
  if (!st.camera) return;
  goButton.disabled = true;
  status.textContent = "Connecting…";
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  st.pc = pc;
  try {
    const [videoTrack] = st.camera.getVideoTracks();
    const [audioTrack] = st.camera.getAudioTracks();
    if (videoTrack) prefer(pc.addTransceiver(videoTrack, { direction: "sendonly", streams: [st.camera], sendEncodings: [{ maxBitrate: MAX_VIDEO_BITRATE }] }), "video");
    if (audioTrack) prefer(pc.addTransceiver(audioTrack, { direction: "sendonly", streams: [st.camera] }), "audio");
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== st.pc) return;
      if (pc.connectionState === "failed") {
        status.textContent = "The connection to the server failed (a firewall on UDP?).";
        stop();
      }
      paint();
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const r = await fetch(whipPath(), {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${st.stream.stream_key}` },
      body: pc.localDescription.sdp,
    });
    if (r.status !== 201) {
      const text = await r.text();
      let why = text;
      try {
        why = JSON.parse(text).error.message;
      } catch {
        /* plain text */
      }
      throw new Error(`The server refused (${r.status}): ${why}`);
    }
    st.session = new URL(r.headers.get("Location"), new URL(whipPath(), location.href)).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
    // Under a weak uplink keep the picture size and give up frame rate: HLS rungs, the recording
    // and viewers' players all prefer one size to a picture that keeps changing it.
    for (const sender of pc.getSenders().filter((x) => x.track?.kind === "video")) {
      const params = sender.getParameters();
      params.degradationPreference = "maintain-resolution";
      await sender.setParameters(params).catch(() => {});
    }
  } catch (err) {
    status.textContent = err.message;
    pc.close();
    st.pc = null;
  }
  goButton.disabled = false;
  paint();
}

/** Ends the publish: DELETE of the session, then the connection closes. The camera stays on. */
async function stop() {
  const pc = st.pc;
  const session = st.session;
  st.pc = null;
  st.session = null;
  goButton.disabled = true;
  if (session) {
    await fetch(session, { method: "DELETE", headers: { Authorization: `Bearer ${st.stream.stream_key}` } }).catch(() => {});
  }
  pc?.close();
  goButton.disabled = false;
  status.textContent = "Stopped.";
  paint();
}

async function refresh() {
  try {
    const next = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
    st.stream = { ...next, stream_key: next.stream_key ?? st.stream.stream_key };
  } catch {
    return;
  }
  paint();
}

function paint() {
  const s = st.stream;
  const sending = !!st.pc;
  stateBadge.textContent = s.state === "live" ? (s.mode === "public" ? "LIVE" : "PRACTICE") : s.state.toUpperCase();
  stateBadge.className = s.state === "live" && s.mode === "public" ? "badge live" : "badge";
  stateBadge.dataset.state = s.state;
  stateBadge.dataset.mode = s.mode;
  goButton.textContent = sending ? "Stop" : "Go live";
  goButton.classList.toggle("danger", sending);
  goButton.dataset.publishing = String(sending);
  goButton.disabled = goButton.disabled || s.state === "ended";
  modeButton.textContent = s.mode === "public" ? "Back to practice" : "Go public";
  modeButton.disabled = s.state === "ended";
  shapeSelect.disabled = sending;
  if (s.state === "ended" && !sending) status.textContent = "This stream has ended: create a new one in the studio.";
  else if (sending && st.pc.connectionState === "connected") {
    status.textContent = s.mode === "public" ? "You are live: viewers see you." : "You are live in practice: only you see it until you go public.";
  }
  const v = s.health?.video;
  const w = s.health?.whip;
  const parts = [];
  if (v?.width) parts.push(`${v.width}×${v.height}`);
  if (v?.bitrate_kbps != null) parts.push(`${Math.round(v.bitrate_kbps)} kb/s`);
  if (w?.rtt_ms != null) parts.push(`RTT ${Math.round(w.rtt_ms)} ms`);
  if (w?.loss_pct != null) parts.push(`loss ${w.loss_pct.toFixed(1)} %`);
  numbers.textContent = s.state === "live" ? parts.join(" · ") : "";
}

main();
