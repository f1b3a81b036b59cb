// /watch/{id}: the player, the product carousel that follows the host's focus in sync with the
// video, chat, the promo banner, sharing, and after the end the replay with chapters and clips.
import { el, $, api, loadSession, currentSession, signIn, liveChannel, money, copy } from "/assets/common.js";
import { play } from "/assets/player.js";
import { cartButton } from "/assets/cart.js";
import { renderPromo } from "/assets/promo.js";
import { viewerActions } from "/assets/follow.js";
import { watchSales } from "/assets/sales.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
const app = $("#app");

const video = el("video", { id: "video", controls: true, muted: true, autoplay: true, playsinline: true });
video.muted = true;
const quality = el("select", { id: "quality", "aria-label": "Quality" }, el("option", { value: "-1" }, "Auto"));
const viewers = el("span", { id: "viewers", class: "pill" }, "– watching");
const latency = el("span", { id: "latency", class: "pill" }, "");
const stateBadge = el("span", { id: "state", class: "badge" }, "");
const shareButton = el("button", { id: "share", type: "button" }, "Share");
const promo = el("div", { id: "promo", class: "promo", hidden: true });
const carousel = el("ul", { id: "carousel", class: "carousel", "aria-label": "Products" });
const chatList = el("ul", { id: "chat-messages", class: "chat", "aria-live": "polite" });
const chatStatus = el("p", { id: "chat-status", class: "hint" });
const chatArea = el("div", { id: "chat-compose" });
const replay = el("section", { id: "replay", class: "replay", hidden: true });
const title = el("h1", { id: "title" }, "");
// Flash sales count down with the picture: the player says which date its frame shows.
const sales = watchSales(id, { pictureDate: () => player?.pictureDate() ?? null });

let player = null;
let live = null;
const appliedMarkers = new Set();
const chatIds = new Set();

function focusProduct(productId, source) {
  carousel.dataset.focusSource = source;
  for (const li of carousel.children) {
    const on = li.dataset.productId === productId;
    li.classList.toggle("focused", on);
    if (on) {
      li.setAttribute("aria-current", "true");
      li.scrollIntoView({ block: "nearest", inline: "center", behavior: "smooth" });
    } else li.removeAttribute("aria-current");
  }
}

function renderProducts(products) {
  carousel.replaceChildren(
    ...products.map((p) =>
      el(
        "li",
        { "data-product-id": p.id, class: "product" },
        p.image_url ? el("img", { src: p.image_url, alt: "", loading: "lazy" }) : null,
        el("span", { class: "title" }, p.title),
        el("span", { class: "price" }, money(p.price, p.currency)),
        p.url ? el("a", { href: `/go/${encodeURIComponent(id)}/${encodeURIComponent(p.id)}`, class: "buy", rel: "noopener" }, "Buy") : null,
        cartButton(id, p),
      ),
    ),
  );
}

function addChat(m) {
  if (chatIds.has(m.id)) return;
  chatIds.add(m.id);
  const li = el("li", { "data-id": m.id, class: `msg ${m.role}` }, el("strong", {}, m.user), " ", el("span", { class: "text" }, m.text));
  chatList.append(li);
  chatList.scrollTop = chatList.scrollHeight;
}

function showPromo(p) {
  renderPromo(promo, id, p);
}

function renderCompose() {
  const s = currentSession();
  if (s) {
    const input = el("input", { id: "chat-input", maxlength: 500, placeholder: "Say something…", "aria-label": "Chat message", autocomplete: "off" });
    const form = el(
      "form",
      { id: "chat-form", class: "inline" },
      input,
      el("button", { type: "submit" }, "Send"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      live?.send({ type: "chat_message", text });
      input.value = "";
    });
    chatArea.replaceChildren(el("p", { class: "hint" }, `Chatting as @${s.handle ?? s.role}`), form);
    if (s.role === "viewer") chatArea.append(reportForm());
  } else {
    const handle = el("input", { id: "chat-handle", placeholder: "your_name", pattern: "[a-z0-9_]{2,32}", "aria-label": "Chat name", required: true });
    const form = el("form", { id: "chat-signin", class: "inline" }, handle, el("button", { type: "submit" }, "Join chat"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const v = await api("POST", "/api/v1/viewers", { handle: handle.value.trim() });
        await signIn(v.token);
        live?.reconnect();
        renderCompose();
      } catch (err) {
        chatStatus.textContent = err.message;
      }
    });
    chatArea.replaceChildren(el("p", { class: "hint" }, "Pick a name (a-z, 0-9, _) to chat."), form);
  }
}

/** Viewers can report the stream to the admins. */
function reportForm() {
  const reason = el("input", { id: "report-reason", maxlength: 500, required: true, "aria-label": "Why report this stream?", placeholder: "What is wrong?" });
  const status = el("span", { id: "report-status", class: "hint" });
  const form = el("form", { id: "report-form", class: "inline" }, reason, el("button", { type: "submit" }, "Report"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/reports", { target: { stream_id: id }, reason: reason.value.trim() });
      status.textContent = "Reported. Thank you.";
      reason.value = "";
    } catch (err) {
      status.textContent = err.message;
    }
  });
  return el("details", { class: "report" }, el("summary", {}, "Report this stream"), form);
}

async function showReplay() {
  replay.hidden = false;
  stateBadge.textContent = "REPLAY";
  stateBadge.className = "badge";
  latency.textContent = "";
  const chapters = el("ol", { id: "chapters", class: "chapters" });
  const clips = el("ul", { id: "clips", class: "clips" });
  replay.replaceChildren(el("h2", {}, "Replay"), el("h3", {}, "Chapters"), chapters, el("h3", {}, "Clips"), clips);
  try {
    const c = await api("GET", `/api/v1/streams/${id}/chapters`);
    for (const ch of c.chapters) {
      chapters.append(
        el("li", {}, el("button", { type: "button", class: "chapter", "data-product-id": ch.product_id, onclick: () => {
          video.currentTime = ch.start_s;
          video.play().catch(() => {});
          focusProduct(ch.product_id, "chapter");
        } }, `${fmtTime(ch.start_s)} ${ch.title}`)),
      );
    }
    if (!c.chapters.length) chapters.append(el("li", { class: "empty" }, "No products were shown."));
    const k = await api("GET", `/api/v1/streams/${id}/clips`);
    for (const clip of k.clips) {
      clips.append(el("li", {}, clip.state === "ready" ? el("a", { href: clip.download_url }, `Clip: ${clip.title}`) : `Clip: ${clip.title} (${clip.state})`));
    }
    // The public replay (what was public, back to back) as a file.
    const r = await api("GET", `/api/v1/streams/${id}/replay`).catch(() => null);
    if (r && r.download_url) {
      replay.append(el("a", { id: "replay-link", href: r.download_url }, `Download the replay (${Math.round((r.bytes || 0) / 1e6)} MB)`));
    }
  } catch (err) {
    replay.append(el("p", { class: "hint" }, err.message));
  }
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

function startPlayer(url) {
  player?.destroy();
  player = play(video, url, {
    onLevels: (levels) => {
      quality.replaceChildren(el("option", { value: "-1" }, "Auto"), ...levels.map((l) => el("option", { value: String(l.index) }, l.label)));
    },
    onCue: ({ id: marker, productId }) => {
      appliedMarkers.add(marker);
      focusProduct(productId, "video");
    },
    onLatency: (s) => (latency.textContent = s == null ? "" : `${s.toFixed(1)} s behind live`),
    onError: (msg) => (latency.textContent = msg),
  });
}

let ended = false;
function onEvent(ev) {
  switch (ev.type) {
    case "chat_message":
      addChat(ev);
      break;
    case "message_deleted":
      chatList.querySelector(`li[data-id="${Number(ev.id)}"]`)?.remove();
      break;
    case "viewer_count":
      viewers.textContent = `${ev.watching} watching`;
      break;
    case "product_focused": {
      // The video shows the focus when its DATERANGE cue turns active; the socket is the
      // fallback when no cue comes (native players, markers outside the window).
      const wait = ended ? 0 : (player ? player.latency() : 0) * 1000 + 1500;
      setTimeout(() => appliedMarkers.has(ev.id) || focusProduct(ev.product_id, "socket"), wait);
      break;
    }
    case "promo_started":
      showPromo(ev);
      break;
    case "stream_state":
      stateBadge.textContent = ev.state === "live" ? "LIVE" : ev.state.toUpperCase();
      stateBadge.className = ev.state === "live" ? "badge live" : "badge";
      if (ev.state === "ended" && !ended) {
        ended = true;
        promo.hidden = true;
        viewers.hidden = true;
        player?.destroy();
        player = null;
        // The playlist is now a complete VOD: play it from the start.
        setTimeout(() => startPlayer(playbackUrl), 1000);
        showReplay();
      }
      break;
    case "error":
      chatStatus.textContent = ev.message;
      break;
  }
}

let playbackUrl = "";
async function main() {
  await loadSession();
  let stream;
  try {
    stream = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  } catch {
    app.replaceChildren(el("h1", { class: "notfound" }, "Not found"));
    return;
  }
  document.title = `${stream.title} · livefront`;
  title.textContent = stream.title;
  playbackUrl = stream.playback.hls;
  quality.addEventListener("change", () => player?.setLevel(Number(quality.value)));
  shareButton.addEventListener("click", () => share(stream));
  app.replaceChildren(
    el(
      "div",
      { class: "watch" },
      el(
        "section",
        { class: "stage" },
        el("div", { class: "video-box" }, video),
        el("div", { class: "bar" }, stateBadge, viewers, latency, el("label", {}, "Quality ", quality), shareButton, viewerActions(id, stream)),
        title,
        promo,
        sales.element,
        carousel,
        replay,
      ),
      el("aside", { class: "side" }, el("h2", {}, "Chat"), chatList, chatStatus, chatArea),
    ),
  );
  renderCompose();
  const [products, promos] = await Promise.all([
    api("GET", `/api/v1/streams/${id}/products`).catch(() => ({ products: [] })),
    api("GET", `/api/v1/streams/${id}/promos`).catch(() => ({ promos: [] })),
  ]);
  renderProducts(products.products);
  const activePromo = promos.promos.find((p) => !p.state || p.state === "active");
  if (activePromo && stream.state !== "ended") showPromo(activePromo);
  if (stream.state === "ended") {
    ended = true;
    viewers.hidden = true;
    showReplay();
    const page = await api("GET", `/api/v1/streams/${id}/chat?limit=100`).catch(() => ({ messages: [] }));
    page.messages.reverse().forEach(addChat);
  }
  if (stream.playback.ready) startPlayer(playbackUrl);
  else if (stream.state !== "live") {
    const starts = stream.scheduled_at ? `Starts ${new Date(stream.scheduled_at).toLocaleString()}.` : "Not live yet.";
    latency.textContent = `${starts} The video starts by itself.`;
  }
  sales.load();
  live = liveChannel(id, (ev) => {
    onEvent(ev);
    sales.onEvent(ev);
    if (ev.type === "stream_state" && ev.state === "live" && !player) waitUntilPlayable();
  });
}

/** A stream that just went live has no playlist for a few seconds: ask until it has. */
async function waitUntilPlayable() {
  for (let i = 0; i < 60 && !player; i++) {
    const s = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`).catch(() => null);
    if (s?.playback.ready) return player || startPlayer(playbackUrl);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Shares the creator's share link (it credits the creator's sales), or this page without one. */
async function share(stream) {
  const link = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}/links`).catch(() => null);
  const url = link?.url || location.href;
  if (navigator.share) {
    try {
      await navigator.share({ title: stream.title, url });
      return;
    } catch {
      /* fall back to copying */
    }
  }
  copy(shareButton, url);
}

main();
