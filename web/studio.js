// /studio: the creator's desk. Sign in with the creator token (exchanged for the session
// cookie), prepare livestreams and the catalog, then run one: ingest settings, the practice
// preview beside ingest health, go public, simulcast destinations (toggles and live state; the
// go-live checklist says where the show will appear), focus products, promo codes, chat
// moderation, end,
// and afterwards the recording and clips. Earnings and level at the bottom. Analytics: while
// live, the audience now, the chat rate and the focused product's clicks; after the end, the
// report (viewers over time with the product focus bands, drawn with uPlot; per-product table;
// CSV of the series).
import { el, $, api, loadSession, signOut, money, copy, when } from "/assets/common.js";
import { signInForm as hostSignIn, focusControls, hostChat } from "/assets/host.js";
import { studioSales } from "/assets/sales.js";
import { play } from "/assets/player.js";

const app = $("#app");
const POLL_MS = 2000;
/** How often the live numbers are read (the series has a point every analytics step). */
const STATS_MS = 5000;
/** Steps the chat rate is averaged over. */
const RATE_STEPS = 6;
const CHART_POINTS = 60;

let catalog = [];
let current = null; // the open stream's panel state
let session = null;
let refreshList = () => {};

function message(text, kind = "hint") {
  return el("p", { class: kind, role: kind === "error" ? "alert" : null }, text);
}

function signInForm(note) {
  hostSignIn(app, start, note);
}

async function start() {
  session = await loadSession();
  if (!session || session.role !== "creator") return signInForm();
  const streams = el("section", { id: "streams", class: "panel" });
  const panel = el("section", { id: "stream-panel", class: "panel", hidden: true });
  const catalogBox = el("section", { id: "catalog", class: "panel" });
  const newStream = el("section", { id: "new-stream", class: "panel" });
  const money = el("section", { id: "earnings", class: "panel" });
  app.replaceChildren(
    el("div", { class: "studio-head" }, el("h1", {}, "Studio"), el("span", { id: "who" }, `@${session.handle}`), el("a", { href: `/@${session.handle}` }, "Storefront"), el("button", { type: "button", id: "signout", onclick: async () => { await signOut(); signInForm("Signed out."); } }, "Sign out")),
    panel,
    el("div", { class: "studio-grid" }, newStream, streams, catalogBox, money),
  );
  await loadCatalog();
  renderCatalog(catalogBox);
  renderNewStream(newStream, streams, panel);
  await renderStreams(streams, panel);
  refreshList = () => renderStreams(streams, panel).catch(() => {});
  renderEarnings(money);
}

async function loadCatalog() {
  catalog = (await api("GET", "/api/v1/products")).products;
}

function renderCatalog(box) {
  const list = el("ul", { class: "list" }, ...catalog.map((p) => el("li", {}, el("span", { class: "title" }, p.title), ` · ${p.sku} · ${money(p.price, p.currency)}`, " ", el("button", { type: "button", class: "small", onclick: async () => { await api("DELETE", `/api/v1/products/${p.id}`); await loadCatalog(); renderCatalog(box); } }, "Delete"))));
  const f = {
    sku: el("input", { name: "sku", required: true, "aria-label": "SKU", placeholder: "SKU" }),
    title: el("input", { name: "title", required: true, "aria-label": "Product title", placeholder: "Title" }),
    price: el("input", { name: "price", required: true, "aria-label": "Price", placeholder: "19.99", inputmode: "decimal" }),
    currency: el("input", { name: "currency", required: true, "aria-label": "Currency", value: "EUR", size: 4 }),
    url: el("input", { name: "url", type: "url", "aria-label": "Shop URL", placeholder: "https://shop…" }),
  };
  const status = message("");
  const form = el("form", { id: "product-form", class: "grid-form" }, ...Object.values(f), el("button", { type: "submit" }, "Add product"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const body = { sku: f.sku.value.trim(), title: f.title.value.trim(), price: f.price.value.trim(), currency: f.currency.value.trim().toUpperCase() };
      if (f.url.value.trim()) body.url = f.url.value.trim();
      await api("POST", "/api/v1/products", body);
      await loadCatalog();
      renderCatalog(box);
      document.dispatchEvent(new Event("catalog"));
    } catch (err) {
      status.textContent = err.message;
    }
  });
  box.replaceChildren(el("h2", {}, "Catalog"), catalog.length ? list : message("No products yet."), form);
}

function renderNewStream(box, streamsBox, panel) {
  const titleIn = el("input", { id: "new-title", required: true, maxlength: 200, "aria-label": "Title" });
  const whenIn = el("input", { id: "new-when", type: "datetime-local", "aria-label": "Scheduled time (optional)" });
  const categoryIn = el("input", { id: "new-category", maxlength: 64, "aria-label": "Category", placeholder: "beauty" });
  const picks = el("fieldset", { id: "new-products" });
  const fillPicks = () => picks.replaceChildren(el("legend", {}, "Carousel"), ...(catalog.length ? catalog.map((p) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "product", value: p.id }), ` ${p.title}`)) : [message("Add products to the catalog first.")]));
  fillPicks();
  document.addEventListener("catalog", fillPicks);
  const status = message("");
  const form = el("form", { id: "create-stream", class: "card-form" }, el("label", {}, "Title ", titleIn), el("label", {}, "Starts (optional) ", whenIn), el("label", {}, "Category ", categoryIn), picks, el("button", { type: "submit" }, "Create livestream"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const body = { title: titleIn.value.trim() };
      if (whenIn.value) body.scheduled_at = new Date(whenIn.value).toISOString();
      if (categoryIn.value.trim()) body.category = categoryIn.value.trim();
      const s = await api("POST", "/api/v1/streams", body);
      const ids = [...picks.querySelectorAll("input:checked")].map((i) => i.value);
      if (ids.length) await api("PUT", `/api/v1/streams/${s.id}/products`, { product_ids: ids });
      form.reset();
      await renderStreams(streamsBox, panel);
      openStream(panel, s.id);
    } catch (err) {
      status.textContent = err.message;
    }
  });
  box.replaceChildren(el("h2", {}, "New livestream"), form);
}

async function renderStreams(box, panel) {
  const { streams } = await api("GET", "/api/v1/streams");
  const list = el("ul", { class: "list" }, ...streams.map((s) => el("li", {}, el("button", { type: "button", class: "link", "data-stream-id": s.id, onclick: () => openStream(panel, s.id) }, s.title), ` · ${s.state} · ${s.mode}`, s.scheduled_at ? ` · ${when(s.scheduled_at)}` : "")));
  box.replaceChildren(el("h2", {}, "Your livestreams"), streams.length ? list : message("None yet."));
}

// ---- one stream ----

async function openStream(panel, id) {
  current?.close();
  const s = await api("GET", `/api/v1/streams/${id}`);
  const products = (await api("GET", `/api/v1/streams/${id}/products`)).products;
  const st = { id, stream: s, preview: null, timer: null, live: null, bitrate: [], closed: false };
  current = st;
  st.close = () => {
    st.closed = true;
    clearInterval(st.timer);
    st.preview?.destroy();
    st.live?.close();
    st.sales?.close();
  };
  st.sales = studioSales(id, products);

  const stateLine = el("p", { id: "stream-status" });
  const modeButton = el("button", { type: "button", id: "mode-toggle" });
  const endButton = el("button", { type: "button", id: "end-stream", class: "danger" }, "End stream");
  const server = el("input", { id: "ingest-server", readonly: true, value: s.ingest.rtmp_server, "aria-label": "RTMP server" });
  const key = el("input", { id: "ingest-key", type: "password", readonly: true, value: s.stream_key, "aria-label": "Stream key" });
  const srt = el("input", { id: "ingest-srt", readonly: true, value: s.ingest.srt, "aria-label": "SRT URL" });
  const reveal = el("button", { type: "button", id: "reveal-key", onclick: () => { const hidden = key.type === "password"; key.type = hidden ? "text" : "password"; reveal.textContent = hidden ? "Hide" : "Reveal"; } }, "Reveal");
  const rotate = el("button", { type: "button", id: "rotate-key", onclick: async () => { const r = await api("POST", `/api/v1/streams/${id}/key`); key.value = r.stream_key; srt.value = r.ingest?.srt ?? srt.value; } }, "Rotate");
  const video = el("video", { id: "preview", controls: true, muted: true, autoplay: true, playsinline: true });
  video.muted = true;
  const chart = el("div", { id: "bitrate-chart", class: "chart", role: "img", "aria-label": "Video bitrate over time" });
  const fps = el("dd", { id: "health-fps" }, "–");
  const kbps = el("dd", { id: "health-bitrate" }, "–");
  const keyint = el("dd", { id: "health-keyframe" }, "–");
  const size = el("dd", { id: "health-size" }, "–");
  const link = el("dd", { id: "health-link" }, "–");
  const warnings = el("ul", { id: "health-warnings", class: "warnings" });
  const after = el("div", { id: "after" });
  const report = el("section", { id: "report" });
  const liveViewers = el("dd", { id: "stat-viewers" }, "–");
  const liveChat = el("dd", { id: "stat-chat-rate" }, "–");
  const liveClicks = el("dd", { id: "stat-focus-clicks" }, "–");
  const stats = el("div", { id: "live-stats", class: "stats" }, el("h3", {}, "Audience now"), el("dl", {}, el("dt", {}, "Viewers"), liveViewers, el("dt", {}, "Chat"), liveChat, el("dt", {}, "Focused product"), liveClicks));
  const shareOut = el("span", { id: "share-url" });

  modeButton.addEventListener("click", async () => {
    const next = st.stream.mode === "public" ? "practice" : "public";
    try {
      await api("PUT", `/api/v1/streams/${id}/mode`, { mode: next });
      st.stream.mode = next;
      paint();
    } catch (err) {
      stateLine.textContent = err.message;
    }
  });
  endButton.addEventListener("click", async () => {
    try {
      await api("POST", `/api/v1/streams/${id}/end`);
      refresh();
    } catch (err) {
      stateLine.textContent = err.message;
    }
  });

  const focusing = focusControls(id, products);
  const focusBox = focusing.buttons;
  const focusStatus = focusing.status;
  // The carousel itself: which catalog products this stream shows.
  const inCarousel = new Set(products.map((p) => p.id));
  const carouselForm = el("form", { id: "carousel-form" }, ...catalog.map((p) => el("label", { class: "check" }, el("input", { type: "checkbox", value: p.id, checked: inCarousel.has(p.id) }), ` ${p.title}`)), el("button", { type: "submit" }, "Save carousel"));
  carouselForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const ids = [...carouselForm.querySelectorAll("input:checked")].map((i) => i.value);
      await api("PUT", `/api/v1/streams/${id}/products`, { product_ids: ids });
      openStream(panel, id);
    } catch (err) {
      focusStatus.textContent = err.message;
    }
  });
  // Chat: read, post as the host, delete and ban.
  const chat = hostChat(id, (ev) => {
    st.sales.onEvent(ev);
    if (ev.type === "stream_state" || ev.type === "destination_state") refresh();
  });
  st.live = chat;
  // Promo codes.
  const promoList = el("ul", { id: "promo-list", class: "list" });
  const pc = { code: el("input", { "aria-label": "Code", placeholder: "CODE", required: true }), description: el("input", { "aria-label": "Description", placeholder: "What it gives", required: true }), discount: el("input", { "aria-label": "Discount", placeholder: "10%", required: true }) };
  const promoStatus = message("");
  const promoForm = el("form", { id: "promo-form", class: "grid-form" }, ...Object.values(pc), el("button", { type: "submit" }, "Add code"), promoStatus);
  async function loadPromos() {
    const { promos } = await api("GET", `/api/v1/streams/${id}/promos`);
    promoList.replaceChildren(...promos.map((p) => el("li", {}, el("code", {}, p.code), ` ${p.discount} · ${p.description} · ${p.state ?? ""}`)));
  }
  promoForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/api/v1/streams/${id}/promos`, { code: pc.code.value.trim(), description: pc.description.value.trim(), discount: pc.discount.value.trim() });
      promoForm.reset();
      loadPromos();
    } catch (err) {
      promoStatus.textContent = err.message;
    }
  });
  loadPromos().catch(() => {});

  const shareButton = el("button", { type: "button", id: "make-share", onclick: async () => { try { const l = await api("POST", `/api/v1/streams/${id}/links`); shareOut.textContent = l.url; copy(shareButton, l.url); } catch (err) { shareOut.textContent = err.message; } } }, "Share link");

  panel.hidden = false;
  // Simulcast: the creator's destinations, which this stream sends to, and how each target is doing.
  const destList = el("ul", { id: "destination-list", class: "list" });
  const destStatus = message("Only public media goes out: in practice nothing is sent to any destination.");
  const dn = {
    name: el("input", { "aria-label": "Destination name", placeholder: "YouTube", required: true, maxlength: 64 }),
    url: el("input", { "aria-label": "Ingest URL", placeholder: "rtmp://a.rtmp.youtube.com/live2", required: true }),
    key: el("input", { "aria-label": "Destination stream key", type: "password", placeholder: "stream key", autocomplete: "off" }),
  };
  const destForm = el("form", { id: "destination-form", class: "grid-form" }, ...Object.values(dn), el("button", { type: "submit" }, "Add destination"));
  destForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const body = { name: dn.name.value.trim(), url: dn.url.value.trim() };
      if (dn.key.value) body.key = dn.key.value;
      await api("POST", "/api/v1/me/destinations", body);
      dn.name.value = dn.url.value = dn.key.value = "";
      destStatus.textContent = "Added. Tick it to send this stream there while public.";
      loadDestinations();
    } catch (err) {
      destStatus.textContent = err.message;
    }
  });
  async function choose(ids) {
    try {
      await api("PUT", `/api/v1/streams/${id}/destinations`, { ids });
      refresh();
    } catch (err) {
      destStatus.textContent = err.message;
    }
  }
  async function loadDestinations() {
    const all = (await api("GET", "/api/v1/me/destinations").catch(() => ({ destinations: [] }))).destinations;
    st.allDestinations = all;
    paintDestinations();
  }
  // Each destination: a toggle (sent to by this stream or not), its state, numbers and last error.
  function paintDestinations() {
    const chosen = st.stream.destinations ?? [];
    const live = new Map(chosen.map((t) => [t.id, t]));
    const all = st.allDestinations ?? [];
    destList.replaceChildren(
      ...all.map((d) => {
        const t = live.get(d.id);
        const box = el("input", { type: "checkbox", "aria-label": `Send to ${d.name}` });
        box.checked = !!t;
        box.disabled = st.stream.state === "ended";
        box.addEventListener("change", () => choose(all.filter((x) => (x.id === d.id ? box.checked : live.has(x.id))).map((x) => x.id)));
        const state = t ? t.state : "not chosen";
        const numbers = t && t.state === "live" ? ` · ${t.bitrate_kbps != null ? Math.round(t.bitrate_kbps) + " kb/s · " : ""}${(t.bytes / 1e6).toFixed(1)} MB` : "";
        const error = t?.error && t.state !== "live" ? ` · ${t.error}` : "";
        const key = d.key_last4 ? ` · key …${d.key_last4}` : "";
        return el("li", { "data-id": d.id, "data-state": state }, el("label", {}, box, " ", el("strong", {}, d.name)), ` ${d.url}${key}${d.enabled ? "" : " · disabled"} · `, el("span", { class: "target-state" }, state), numbers, error);
      }),
    );
    const enabled = (t) => all.find((d) => d.id === t.id)?.enabled !== false;
    const where = ["your storefront"].concat(chosen.filter(enabled).map((t) => t.name));
    whereItem.textContent = `When you go public, the show appears on: ${where.join(", ")}.`;
  }
  const whereItem = el("li", { id: "go-live-where" });
  loadDestinations();

  panel.replaceChildren(
    el("h2", { id: "stream-title" }, s.title),
    stateLine,
    el("div", { class: "buttons" }, modeButton, endButton, shareButton, el("a", { href: `/watch/${id}` }, "Viewer page"), ...(s.ingest.whip ? [el("a", { id: "go-live-link", href: `/studio/go-live/${encodeURIComponent(id)}` }, "Go live from this phone")] : []), shareOut),
    el(
      "div",
      { class: "live-grid" },
      el("div", { class: "preview" }, el("h3", {}, "Preview"), el("div", { class: "video-box" }, video)),
      el("div", { class: "health", id: "health" }, el("h3", {}, "Ingest health"), chart, el("dl", {}, el("dt", {}, "Bitrate"), kbps, el("dt", {}, "Frame rate"), fps, el("dt", {}, "Keyframe every"), keyint, el("dt", {}, "Picture"), size, el("dt", {}, "Connection"), link), warnings),
    ),
    stats,
    el("h3", {}, "Products"), focusBox, focusStatus,
    el("details", { id: "carousel-edit" }, el("summary", {}, "Edit the carousel"), carouselForm),
    st.sales.element,
    el(
      "details",
      { id: "ingest", open: true },
      el("summary", {}, "Ingest settings"),
      el("label", {}, "RTMP server ", server), el("button", { type: "button", onclick: (e) => copy(e.target, server.value) }, "Copy"),
      el("label", {}, "Stream key ", key), reveal, el("button", { type: "button", onclick: (e) => copy(e.target, key.value) }, "Copy"), rotate,
      el("label", {}, "SRT URL ", srt), el("button", { type: "button", onclick: (e) => copy(e.target, srt.value) }, "Copy"),
      ...(s.ingest.whip ? [el("label", {}, "WHIP URL ", el("input", { id: "ingest-whip", readonly: true, value: s.ingest.whip, "aria-label": "WHIP URL" })), el("button", { type: "button", onclick: (e) => copy(e.target, s.ingest.whip) }, "Copy")] : []),
      ...(s.ingest.rtmps_server ? [el("label", {}, "RTMPS server ", el("input", { id: "ingest-rtmps", readonly: true, value: s.ingest.rtmps_server, "aria-label": "RTMPS server" })), el("button", { type: "button", onclick: (e) => copy(e.target, s.ingest.rtmps_server) }, "Copy")] : []),
      el("ol", { class: "setup" },
        el("li", {}, "OBS: Settings → Stream → Service “Custom…”, Server = RTMP server, Stream Key = stream key."),
        el("li", {}, "OBS: Output → keyframe interval 2 s, x264 CBR; Audio AAC 48 kHz."),
        el("li", {}, "OBS 30+ over WebRTC: Service “WHIP”, Server = WHIP URL, Bearer Token = stream key."),
        el("li", {}, "Phone (Larix, Prism…): new RTMP connection with server + “/” + key, or the SRT URL as is."),
        el("li", {}, "Start streaming: you are in practice; only you see the preview. Then Go public."),
        whereItem),
    ),
    el("details", { id: "simulcast", open: true }, el("summary", {}, "Simulcast"), destStatus, destList, destForm),
    el("div", { class: "two" }, el("div", {}, el("h3", {}, "Chat"), chat.list, chat.form, chat.status), el("div", {}, el("h3", {}, "Promo codes"), promoList, promoForm)),
    after,
    report,
  );

  // The live numbers, from the analytics series.
  async function liveStats() {
    if (st.closed || st.stream.state !== "live") return;
    const r = await api("GET", `/api/v1/streams/${id}/analytics`).catch(() => null);
    if (!r) return;
    const sampled = r.series.filter((p) => p.viewers != null);
    const last = sampled[sampled.length - 1];
    liveViewers.textContent = last ? (last.mode === "public" ? `${last.viewers} (${last.players} players, ${last.sockets} in the live channel)` : "practice: only you") : "–";
    const recent = r.series.slice(-RATE_STEPS);
    const perMinute = recent.length ? (recent.reduce((n, p) => n + p.chat, 0) * 60) / (recent.length * r.step_s) : 0;
    liveChat.textContent = `${perMinute.toFixed(1)} messages a minute (${r.summary.chat_messages} in all)`;
    const pid = focusing.focused ?? r.focus[r.focus.length - 1]?.product_id;
    const p = r.summary.products.find((x) => x.product_id === pid);
    liveClicks.textContent = p ? `${p.title ?? pid}: ${p.clicks} clicks` : "none in focus";
  }
  liveStats();
  st.stats = setInterval(liveStats, STATS_MS);
  const close = st.close;
  st.close = () => {
    clearInterval(st.stats);
    close();
  };
  if (s.state === "ended") showReport(report, id);

  function paint() {
    const x = st.stream;
    stateLine.textContent = `${x.state} · ${x.mode === "public" ? "public" : "practice (only you can see it)"}`;
    stateLine.dataset.state = x.state;
    stateLine.dataset.mode = x.mode;
    modeButton.textContent = x.mode === "public" ? "Back to practice" : "Go public";
    modeButton.disabled = x.state === "ended";
    endButton.disabled = x.state === "ended";
    const h = x.health;
    const v = h?.video;
    kbps.textContent = v?.bitrate_kbps != null ? `${Math.round(v.bitrate_kbps)} kb/s` : "–";
    fps.textContent = v?.fps != null ? `${v.fps.toFixed(1)} fps` : "–";
    keyint.textContent = v?.keyframe_interval_s != null ? `${v.keyframe_interval_s.toFixed(1)} s` : "–";
    size.textContent = v?.width ? `${v.width}×${v.height} ${v.codec ?? ""}` : "–";
    link.textContent = connection(h);
    const w = [...(h?.warnings ?? [])];
    if (h?.reconnecting) w.unshift("The encoder dropped; waiting for it to come back.");
    if (x.state !== "live" && x.state !== "ended") w.unshift("Waiting for your encoder: start streaming to the RTMP server with your key.");
    warnings.replaceChildren(...w.map((t) => el("li", {}, t)));
    drawChart(chart, st.bitrate);
    paintDestinations();
  }

  async function refresh() {
    if (st.closed) return;
    try {
      st.stream = await api("GET", `/api/v1/streams/${id}`);
    } catch {
      return;
    }
    const x = st.stream;
    if (x.state !== st.shown?.state || x.mode !== st.shown?.mode) refreshList();
    st.shown = { state: x.state, mode: x.mode };
    if (x.health?.video?.bitrate_kbps != null) {
      st.bitrate.push(x.health.video.bitrate_kbps);
      if (st.bitrate.length > CHART_POINTS) st.bitrate.shift();
    }
    if (x.state === "live" && x.playback.ready && !st.preview) st.preview = play(video, x.playback.hls, {});
    if (x.state === "ended" && !st.ended) {
      st.ended = true;
      st.preview?.destroy();
      st.preview = null;
      clearInterval(st.timer);
      clearInterval(st.stats);
      stats.hidden = true;
      showAfter(after, id);
      showReport(report, id);
    }
    paint();
  }
  paint();
  refresh();
  st.timer = setInterval(refresh, POLL_MS);
}

async function showAfter(box, id) {
  box.replaceChildren(el("h3", {}, "Recording and clips"), message("Finishing the recording…"));
  for (let i = 0; i < 60; i++) {
    const r = await api("GET", `/api/v1/streams/${id}/recording`).catch(() => null);
    if (r && r.state !== "recording" && r.state !== "finalizing") {
      const clips = (await api("GET", `/api/v1/streams/${id}/clips`).catch(() => ({ clips: [] }))).clips;
      box.replaceChildren(
        el("h3", {}, "Recording and clips"),
        r.download_url ? el("a", { id: "recording-link", href: r.download_url }, `Download recording (${Math.round((r.bytes || 0) / 1e6)} MB)`) : message(`Recording ${r.state}`),
        r.public_replay
          ? (r.public_replay.download_url
            ? el("a", { id: "replay-link", href: r.public_replay.download_url }, `Public replay, what viewers get (${Math.round((r.public_replay.bytes || 0) / 1e6)} MB)`)
            : message(`Public replay ${r.public_replay.state}`))
          : message("Nothing was public: no public replay."),
        el("ul", { class: "list" }, ...clips.map((c) => el("li", {}, c.download_url ? el("a", { href: c.download_url }, `Clip: ${c.title}`) : `Clip: ${c.title} (${c.state})`))),
      );
      return;
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
}

/** Seconds as "1 h 02 min" / "3 min 05 s" / "12 s". */
function duration(s) {
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")} min`;
  if (t >= 60) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, "0")} s`;
  return `${t} s`;
}

const BAND_COLOURS = ["rgba(255,79,109,0.18)", "rgba(138,180,255,0.18)", "rgba(62,207,142,0.18)", "rgba(255,207,112,0.18)"];

/** The report of an ended stream: summary, viewers over time with focus bands, products, codes. */
async function showReport(box, id) {
  box.replaceChildren(el("h3", {}, "Report"), message("Loading the report…"));
  let r;
  try {
    r = await api("GET", `/api/v1/streams/${id}/analytics`);
  } catch (err) {
    box.replaceChildren(el("h3", {}, "Report"), message(err.message, "error"));
    return;
  }
  const s = r.summary;
  const sales = s.sales.length ? s.sales.map((x) => `${x.sales} ${x.currency} (${x.orders} orders, ${x.commission} ${x.currency} commission)`).join("; ") : "none";
  const facts = [
    ["Peak viewers", s.peak_at ? `${s.peak_viewers} at ${new Date(s.peak_at).toLocaleTimeString()}` : `${s.peak_viewers}`],
    ["Unique viewers", `${s.unique_viewers}`],
    ["Watch time", `${duration(s.watch_time_s)} (${duration(s.avg_watch_time_s)} each)`],
    ["Replay", `${s.replay_views} views, ${duration(s.replay_watch_time_s)}`],
    ["Live", `${duration(s.live_s)} (${duration(s.public_s)} public, ${duration(s.practice_s)} practice)`],
    ["Chat", `${s.chat_messages} messages from ${s.chatters} viewers`],
    ["Followers gained", `${s.followers_gained}`],
    ["Click-outs", `${s.clicks}`],
    ["Add to cart", `${s.cart_adds}`],
    ["Sales", sales],
  ];
  const dl = el("dl", { id: "report-summary", class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const chart = el("div", { id: "viewers-chart", class: "uchart", role: "img", "aria-label": "Viewers over time, with the products in focus as bands" });
  const legend = el("ul", { id: "focus-legend", class: "legend" });
  const products = el(
    "table",
    { id: "report-products" },
    el("thead", {}, el("tr", {}, ...["Product", "Minutes in focus", "Click-outs", "Add to cart", "Orders", "Sales", "Commission"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      ...s.products.map((p) => {
        const money = (k) => p.sales.map((x) => `${x[k]} ${x.currency}`).join(", ") || "–";
        return el("tr", { "data-product-id": p.product_id }, el("td", {}, p.title ?? p.product_id), el("td", {}, p.minutes_in_focus.toFixed(1)), el("td", {}, `${p.clicks}`), el("td", {}, `${p.cart_adds}`), el("td", {}, `${p.sales.reduce((n, x) => n + x.orders, 0)}`), el("td", {}, money("sales")), el("td", {}, money("commission")));
      }),
    ),
  );
  const promos = s.promos.length ? el("ul", { id: "report-promos", class: "list" }, ...s.promos.map((p) => el("li", {}, el("code", {}, p.code), ` ${p.redemptions} redemptions`, p.sales.length ? `, sold ${p.sales.map((x) => `${x.sales} ${x.currency} in ${x.orders} orders`).join(", ")}` : ""))) : message("No promo codes.");
  box.replaceChildren(
    el("h3", {}, "Report"),
    dl,
    chart,
    legend,
    el("h3", {}, "Products"),
    s.products.length ? products : message("No product was focused, clicked or sold."),
    el("h3", {}, "Promo codes"),
    promos,
    el("p", {}, el("a", { id: "report-csv", href: `/api/v1/streams/${id}/analytics?format=csv`, download: `analytics-${id}.csv` }, "Download the series (CSV)")),
  );
  drawViewers(chart, legend, r);
}

/** Viewers over time (uPlot), the products in focus as coloured bands behind the line. */
function drawViewers(box, legend, r) {
  if (!r.series.length || typeof uPlot === "undefined") {
    box.replaceChildren(message(r.series.length ? "Charts could not load." : "The stream was never live."));
    return;
  }
  const xs = r.series.map((p) => Date.parse(p.at) / 1000);
  const viewers = r.series.map((p) => p.viewers);
  const chat = r.series.map((p) => p.chat);
  const colour = new Map();
  for (const b of r.focus) if (!colour.has(b.product_id)) colour.set(b.product_id, BAND_COLOURS[colour.size % BAND_COLOURS.length]);
  legend.replaceChildren(...[...colour].map(([pid, c]) => el("li", {}, el("span", { class: "swatch", style: null, "data-colour": c }), ` ${r.focus.find((b) => b.product_id === pid).title}`)));
  for (const sw of legend.querySelectorAll(".swatch")) sw.style.background = sw.dataset.colour;
  const bands = (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    for (const b of r.focus) {
      const x0 = u.valToPos(Date.parse(b.from) / 1000, "x", true);
      const x1 = u.valToPos(Date.parse(b.to) / 1000, "x", true);
      ctx.fillStyle = colour.get(b.product_id);
      ctx.fillRect(Math.max(x0, bbox.left), bbox.top, Math.max(1, Math.min(x1, bbox.left + bbox.width) - Math.max(x0, bbox.left)), bbox.height);
    }
    ctx.restore();
  };
  const width = Math.max(280, box.clientWidth || 600);
  const opts = {
    width,
    height: 240,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(2, max * 1.1)] } },
    axes: [{ stroke: "#9aa3b2", grid: { stroke: "#2a2f3a" } }, { stroke: "#9aa3b2", grid: { stroke: "#2a2f3a" } }, { side: 1, stroke: "#9aa3b2", grid: { show: false }, scale: "chat" }],
    series: [{}, { label: "Viewers", stroke: "#3ecf8e", width: 2, spanGaps: false }, { label: "Chat", stroke: "#8ab4ff", width: 1, scale: "chat", paths: uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 20] }) : undefined, fill: "rgba(138,180,255,0.35)" }],
    hooks: { drawClear: [bands] },
  };
  box.replaceChildren();
  new uPlot(opts, [xs, viewers, chat], box);
}

/** How the publisher's connection is doing, for SRT and WebRTC (WHIP) publishers. */
function connection(h) {
  const rtt = (ms) => (ms != null ? `RTT ${Math.round(ms)} ms` : null);
  if (h?.whip) {
    const w = h.whip;
    return ["WebRTC", rtt(w.rtt_ms), `loss ${w.loss_pct.toFixed(1)} % (${w.packets_lost} packets)`, `jitter ${w.jitter_ms.toFixed(1)} ms`, `${Math.round(w.bitrate_kbps)} kb/s`].filter(Boolean).join(" · ");
  }
  if (h?.srt) {
    const x = h.srt;
    return ["SRT", rtt(x.rtt_ms), `${x.loss_pkts} lost (${x.dropped_pkts} dropped)`, `latency ${x.latency_ms} ms`, `${Math.round(x.recv_rate_kbps)} kb/s`].filter(Boolean).join(" · ");
  }
  return "–";
}

/** Bitrate over the last samples as a small SVG line chart. */
function drawChart(box, values) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 300;
  const H = 80;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart-svg");
  const max = Math.max(1, ...values) * 1.15;
  const pts = values.map((v, i) => `${((i / Math.max(1, CHART_POINTS - 1)) * W).toFixed(1)},${(H - (v / max) * H).toFixed(1)}`);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("class", "chart-line");
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", "4");
  label.setAttribute("y", "12");
  label.setAttribute("class", "chart-label");
  label.textContent = values.length ? `max ${Math.round(Math.max(...values))} kb/s` : "no video yet";
  svg.append(line, label);
  box.replaceChildren(svg);
}

async function renderEarnings(box) {
  const tag = el("input", { id: "associate-tag", "aria-label": "Associate tag", placeholder: "alice-20", pattern: "[a-z0-9-]{3,32}", required: true });
  const tagStatus = message("Your associate tag goes on product links and share links.");
  const tagForm = el("form", { id: "tag-form", class: "inline" }, tag, el("button", { type: "submit" }, "Save tag"));
  tagForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const me = await api("PATCH", "/api/v1/me", { associate_tag: tag.value.trim() });
      tagStatus.textContent = `Saved: ${me.associate_tag}`;
    } catch (err) {
      tagStatus.textContent = err.message;
    }
  });
  box.replaceChildren(el("h2", {}, "Earnings and level"), tagForm, tagStatus);
  try {
    const [e, l] = await Promise.all([api("GET", "/api/v1/me/earnings"), api("GET", "/api/v1/me/level")]);
    box.append(el("p", { id: "level" }, `Level ${l.level} · ${l.public_minutes} public minutes in ${l.window_days} days`));
    if (l.next) box.append(message(`Next: level ${l.next.level} at ${l.next.public_minutes} minutes and ${l.next.sales} sales.`));
    const totals = e.totals.length ? e.totals.map((t) => el("li", {}, `${t.commission} ${t.currency} commission on ${t.sales} ${t.currency} sales (${t.orders} orders)`)) : [el("li", {}, "No sales yet.")];
    box.append(el("ul", { class: "list" }, ...totals));
  } catch (err) {
    box.append(message(err.message));
  }
}

start();
