// Flash sales and auctions on the watch page and in the studio. Every time shown is computed
// from the server's clock: each answer and live event carries `server_time`, the page keeps the
// offset between that and its own clock, and counts down to the server's `starts_at` / `ends_at`
// (no client timer that drifts, no trust in the viewer's clock).
//
// A flash sale is lined up with the picture: the live channel announces it seconds before the
// viewer's video shows the host announcing it (HLS runs behind). While the player says which
// PROGRAM-DATE-TIME its frame shows, the card appears when the picture reaches the sale's
// `announced_program_date_time`, counts down to `starts_program_date_time` on the picture's clock
// and opens when the picture gets there; from then on it shows the server's state and the
// server's remaining time. Without a picture date (Safari's own player, before playback) it
// follows the server's clock alone.
import { el, api, currentSession } from "/assets/common.js";

let offsetMs = 0;
function syncClock(serverTime) {
  if (serverTime) offsetMs = Date.parse(serverTime) - Date.now();
}
const serverNow = () => Date.now() + offsetMs;
function secondsUntil(iso) {
  return Math.max(0, Math.ceil((Date.parse(iso) - serverNow()) / 1000));
}
function clock(s) {
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** The watch page's sales box: countdown, remaining units and a claim button per flash sale;
 * the current bid, time left and bid buttons per auction. */
export function watchSales(streamId, { pictureDate = () => null } = {}) {
  const box = el("section", { id: "sales", class: "sales", "aria-live": "polite" });
  const sales = new Map();
  const auctions = new Map();
  const base = `/api/v1/streams/${encodeURIComponent(streamId)}`;

  function saleCard(s) {
    const status = el("span", { class: "sale-status" });
    const remaining = el("span", { class: "sale-remaining" });
    const note = el("span", { class: "hint sale-note" });
    const claim = el("button", { type: "button", class: "claim" }, "Claim");
    claim.addEventListener("click", async () => {
      if (currentSession()?.role !== "viewer") return (note.textContent = "Sign in as a viewer to claim.");
      claim.disabled = true;
      try {
        const r = await api("POST", `${base}/flash-sales/${s.id}/claim`);
        note.textContent = `Claimed! Reserved until ${new Date(r.expires_at).toLocaleTimeString()}.`;
        update(r.sale);
      } catch (err) {
        note.textContent = err.message;
      } finally {
        claim.disabled = false;
        paintSale(sales.get(s.id), picture());
      }
    });
    const card = el("div", { class: "sale card", "data-sale-id": s.id }, el("strong", {}, `Flash sale: ${s.title}`), " ", el("span", { class: "sale-price" }, `${s.price} ${s.currency}`), " ", el("s", {}, `${s.list_price}`), el("div", {}, status, " ", remaining), claim, note);
    return { card, status, remaining, claim, view: s };
  }

  function paintSale(entry, picture) {
    if (!entry) return;
    const s = entry.view;
    let phase = s.phase;
    if (phase === "scheduled" && secondsUntil(s.starts_at) === 0) phase = s.remaining > 0 ? "running" : "sold_out";
    if (phase !== "ended" && secondsUntil(s.ends_at) === 0) phase = "ended";
    // The picture decides when the countdown shows and when it ends; the server decides the rest.
    let startsIn = secondsUntil(s.starts_at);
    if (picture != null && phase !== "ended") {
      const toStart = Date.parse(s.starts_program_date_time) - picture;
      if (picture < Date.parse(s.announced_program_date_time)) phase = "announced_later";
      else if (toStart > 0) {
        phase = "scheduled";
        startsIn = Math.ceil(toStart / 1000);
      }
    }
    entry.card.hidden = phase === "announced_later";
    entry.card.dataset.phase = phase;
    entry.card.dataset.picture = picture == null ? "" : new Date(picture).toISOString();
    entry.remaining.textContent = phase === "ended" ? "" : `${s.remaining} of ${s.quantity} left`;
    entry.status.textContent =
      phase === "scheduled" ? `Starts in ${clock(startsIn)}` :
      phase === "running" ? `Ends in ${clock(secondsUntil(s.ends_at))}` :
      phase === "sold_out" ? "Sold out" : phase === "ended" ? "Sale over" : "";
    entry.claim.hidden = phase !== "running";
  }

  /** The date of the frame on screen (ms), and how far it is behind the server's clock. While
   * the player has no date for a moment (a stall, a quality switch) the last frame shown stays. */
  let lastPicture = null;
  function picture() {
    const d = pictureDate();
    if (d) lastPicture = d.getTime();
    const ms = lastPicture;
    box.dataset.picture = ms == null ? "" : new Date(ms).toISOString();
    box.dataset.behindMs = ms == null ? "" : String(Math.round(serverNow() - ms));
    return ms;
  }

  function update(s) {
    syncClock(s.server_time);
    let entry = sales.get(s.id);
    if (!entry) {
      entry = saleCard(s);
      sales.set(s.id, entry);
      box.append(entry.card);
    }
    entry.view = s;
    paintSale(entry, picture());
  }

  function auctionCard(a) {
    const price = el("span", { class: "auction-price" });
    const leader = el("span", { class: "auction-leader" });
    const left = el("span", { class: "auction-left" });
    const note = el("span", { class: "hint auction-note" });
    const bid = el("button", { type: "button", class: "bid" }, "Bid");
    const maxIn = el("input", { class: "max-bid", "aria-label": "Your maximum", placeholder: "max", inputmode: "decimal", size: 6 });
    const proxy = el("button", { type: "button", class: "proxy-bid" }, "Bid up to");
    async function send(body) {
      if (currentSession()?.role !== "viewer") return (note.textContent = "Sign in as a viewer to bid.");
      try {
        const r = await api("POST", `${base}/auctions/${a.id}/bids`, body);
        note.textContent = r.leader === currentSession()?.handle ? "You lead." : "Outbid by a higher maximum.";
        updateAuction(r);
      } catch (err) {
        note.textContent = err.message;
      }
    }
    bid.addEventListener("click", () => send({ amount: auctions.get(a.id).view.minimum_bid }));
    proxy.addEventListener("click", () => maxIn.value.trim() && send({ max_amount: maxIn.value.trim() }));
    const card = el("div", { class: "auction card", "data-auction-id": a.id }, el("strong", {}, `Auction: ${a.title}`), el("div", {}, price, " ", leader, " ", left), el("div", { class: "inline" }, bid, maxIn, proxy), note);
    return { card, price, leader, left, bid, proxy, maxIn, note, view: a };
  }

  function paintAuction(entry) {
    if (!entry) return;
    const a = entry.view;
    const over = a.phase === "ended" || secondsUntil(a.ends_at) === 0;
    entry.card.dataset.phase = over ? "ended" : "running";
    entry.price.textContent = a.price ? `${a.price} ${a.currency}` : `starts at ${a.starting_price} ${a.currency}`;
    entry.leader.textContent = a.leader ? `· ${a.leader} leads` : "";
    entry.left.textContent = over ? (a.winner ? `Won by ${a.winner.handle} at ${a.winner.amount} ${a.currency}` : "Ended without bids") : `· ${clock(secondsUntil(a.ends_at))} left`;
    entry.bid.textContent = `Bid ${a.minimum_bid}`;
    for (const c of [entry.bid, entry.proxy, entry.maxIn]) c.hidden = over;
    if (over && a.winner && a.winner.handle === currentSession()?.handle) entry.note.textContent = "You won!";
  }

  function updateAuction(a) {
    syncClock(a.server_time);
    let entry = auctions.get(a.id);
    if (!entry) {
      entry = auctionCard(a);
      auctions.set(a.id, entry);
      box.append(entry.card);
    }
    // Events may arrive after an answer that was newer: keep the one with more bids.
    if (a.phase === "ended" || a.bids >= entry.view.bids) entry.view = a;
    paintAuction(entry);
  }

  const timer = setInterval(() => {
    const now = picture();
    sales.forEach((entry) => paintSale(entry, now));
    auctions.forEach(paintAuction);
  }, 100);

  return {
    element: box,
    async load() {
      const open = await api("GET", `${base}/sales`).catch(() => null);
      if (!open) return;
      syncClock(open.server_time);
      open.flash_sales.forEach(update);
      open.auctions.forEach(updateAuction);
    },
    onEvent(ev) {
      if (ev.type === "flash_sale") update(ev);
      else if (ev.type === "auction") updateAuction(ev);
    },
    close: () => clearInterval(timer),
  };
}

/** The studio's controls: start a flash sale or an auction on a carousel product, and their
 * live state. */
export function studioSales(streamId, products) {
  const base = `/api/v1/streams/${encodeURIComponent(streamId)}`;
  const options = () => products.map((p) => el("option", { value: p.id }, `${p.title} (${p.price} ${p.currency})`));
  const status = el("p", { class: "hint", id: "sales-status" });
  const state = el("ul", { id: "sales-state", class: "list" });
  const f = {
    product: el("select", { "aria-label": "Product", id: "sale-product" }, ...options()),
    discount: el("input", { "aria-label": "Discount %", id: "sale-discount", type: "number", min: 1, max: 90, value: 20 }),
    quantity: el("input", { "aria-label": "Quantity", id: "sale-quantity", type: "number", min: 1, value: 10 }),
    duration: el("input", { "aria-label": "Duration (s)", id: "sale-duration", type: "number", min: 60, max: 1200, value: 120 }),
    countdown: el("input", { "aria-label": "Countdown (s)", id: "sale-countdown", type: "number", min: 0, max: 300, value: 10 }),
  };
  const saleForm = el("form", { id: "sale-form", class: "grid-form" }, ...Object.values(f), el("button", { type: "submit" }, "Start flash sale"));
  saleForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await api("POST", `${base}/flash-sales`, { product_id: f.product.value, discount_percent: Number(f.discount.value), quantity: Number(f.quantity.value), duration_s: Number(f.duration.value), countdown_s: Number(f.countdown.value) });
      show("sale", s);
      status.textContent = "";
    } catch (err) {
      status.textContent = err.message;
    }
  });
  const g = {
    product: el("select", { "aria-label": "Product", id: "auction-product" }, ...options()),
    start: el("input", { "aria-label": "Starting price", id: "auction-start", value: "1.00" }),
    step: el("input", { "aria-label": "Increment", id: "auction-increment", value: "0.50" }),
    duration: el("input", { "aria-label": "Duration (s)", id: "auction-duration", type: "number", min: 10, max: 3600, value: 60 }),
    extend: el("input", { "aria-label": "Extend on bid (s)", id: "auction-extend", type: "number", min: 0, max: 120, value: 10 }),
  };
  const auctionForm = el("form", { id: "auction-form", class: "grid-form" }, ...Object.values(g), el("button", { type: "submit" }, "Start auction"));
  auctionForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const a = await api("POST", `${base}/auctions`, { product_id: g.product.value, starting_price: g.start.value.trim(), increment: g.step.value.trim(), duration_s: Number(g.duration.value), extend_on_bid_s: Number(g.extend.value) });
      show("auction", a);
      status.textContent = "";
    } catch (err) {
      status.textContent = err.message;
    }
  });
  const rows = new Map();
  function show(kind, v) {
    syncClock(v.server_time);
    let li = rows.get(v.id);
    if (!li) {
      li = el("li", { "data-id": v.id });
      rows.set(v.id, li);
      state.append(li);
    }
    li.dataset.kind = kind;
    li.view = v;
    paint(li);
  }
  function paint(li) {
    const v = li.view;
    li.textContent = li.dataset.kind === "sale"
      ? `Flash sale ${v.title}: ${v.phase === "scheduled" ? `starts in ${clock(secondsUntil(v.starts_at))}` : v.phase}, ${v.remaining}/${v.quantity} left, ends in ${clock(secondsUntil(v.ends_at))}`
      : `Auction ${v.title}: ${v.price ?? "no bids"} ${v.currency}${v.leader ? ` (${v.leader})` : ""}, ${v.bids} bids, ${v.phase === "ended" ? (v.winner ? `won by ${v.winner.handle} at ${v.winner.amount}` : "ended") : `${clock(secondsUntil(v.ends_at))} left`}`;
  }
  const timer = setInterval(() => rows.forEach(paint), 500);
  api("GET", `${base}/sales`).then((open) => {
    open.flash_sales.forEach((s) => show("sale", s));
    open.auctions.forEach((a) => show("auction", a));
  }).catch(() => {});
  return {
    element: el("details", { id: "sales-controls" }, el("summary", {}, "Flash sales and auctions"), saleForm, auctionForm, status, state),
    onEvent(ev) {
      if (ev.type === "flash_sale") show("sale", ev);
      else if (ev.type === "auction") show("auction", ev);
    },
    close: () => clearInterval(timer),
  };
}
