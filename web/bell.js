// The notification bell in every page's header, for a signed-in viewer: the unread count, kept
// live over the notification event stream (SSE), the feed, "mark all read", and browser
// notifications (the Web Notifications API, while a page is open) once the viewer allows them.
import { el, api, loadSession, currentSession } from "/assets/common.js";

const KIND_TEXT = {
  live: (n) => `@${n.creator} is live: ${n.title}`,
  upcoming: (n) => `@${n.creator} scheduled: ${n.title}`,
  reminder: (n) => `Starting now: ${n.title} (@${n.creator})`,
  auction_won: (n) => `You won ${n.detail?.product} at ${n.detail?.amount} ${n.detail?.currency} (@${n.creator})`,
  flash_sale_claimed: (n) => `Flash sale claimed at ${n.detail?.price} ${n.detail?.currency} on ${n.title}: reserved until ${new Date(n.detail?.expires_at).toLocaleTimeString()}`,
};
const text = (n) => (KIND_TEXT[n.kind] || KIND_TEXT.live)(n);

let events = null;
let unread = 0;

function mount() {
  const slot = document.querySelector("#bell-slot");
  if (!slot) return;
  events?.close();
  events = null;
  if (currentSession()?.role !== "viewer") return slot.replaceChildren();
  const count = el("span", { id: "bell-count", class: "bell-count" }, "0");
  const button = el("button", { id: "bell", type: "button", class: "bell", "aria-haspopup": "true", "aria-expanded": "false", "aria-label": "Notifications" }, "🔔 ", count);
  const list = el("ul", { id: "bell-list", class: "bell-list" });
  const markRead = el("button", { id: "bell-read", type: "button", class: "small" }, "Mark all read");
  const allow = el("button", { id: "bell-allow", type: "button", class: "small", hidden: !("Notification" in window) || Notification.permission !== "default" }, "Browser alerts");
  const panel = el("div", { id: "bell-panel", class: "bell-panel", hidden: true }, el("div", { class: "buttons" }, markRead, allow), list);
  const show = (n) => {
    count.textContent = String(n);
    count.dataset.count = String(n);
    button.classList.toggle("unread", n > 0);
  };
  const item = (n) =>
    el("li", { class: n.read ? "read" : "unread", "data-id": n.id }, el("a", { href: `/watch/${encodeURIComponent(n.stream_id)}` }, text(n)));
  const load = async () => {
    const feed = await api("GET", "/api/v1/me/notifications?limit=20");
    unread = feed.unread;
    show(unread);
    list.replaceChildren(...feed.notifications.map(item));
    if (!feed.notifications.length) list.append(el("li", { class: "empty" }, "Nothing yet."));
  };
  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
  });
  markRead.addEventListener("click", async () => {
    await api("POST", "/api/v1/me/notifications/read", {});
    await load();
  });
  allow.addEventListener("click", async () => {
    await Notification.requestPermission();
    allow.hidden = Notification.permission !== "default";
  });
  slot.replaceChildren(el("span", { class: "bell-box" }, button, panel));
  load().catch(() => {});
  events = new EventSource("/api/v1/me/events");
  events.addEventListener("notification", (m) => {
    const n = JSON.parse(m.data);
    unread += 1;
    show(unread);
    list.querySelector(".empty")?.remove();
    list.prepend(item(n));
    if ("Notification" in window && Notification.permission === "granted") {
      const shown = new Notification("livefront", { body: text(n), tag: `lf-${n.id}` });
      shown.onclick = () => window.open(`/watch/${encodeURIComponent(n.stream_id)}`, "_self");
    }
  });
  // A reader that fell behind reloads the feed.
  events.addEventListener("lagged", () => load().catch(() => {}));
}

window.addEventListener("livefront:session", mount);
(currentSession() ? Promise.resolve() : loadSession()).then(mount, () => {});
