// The notification bell in every page's header, for a signed-in viewer: the unread count, kept
// live over the notification event stream (SSE), the feed, "mark all read", and browser
// notifications once the viewer allows them ("Browser alerts"): Web Push through the service
// worker /sw.js where the browser has it (notifications with no livefront page open), else the
// Web Notifications API while a page is open.
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

const PUSH_PATH = "/api/v1/me/push-subscriptions";
const canPush = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

// The server's key (base64url) as the bytes `pushManager.subscribe` takes.
function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// This browser's push subscription, or null (no service worker yet, or not subscribed).
async function currentPush() {
  if (!canPush()) return null;
  const reg = await navigator.serviceWorker.getRegistration("/");
  return reg ? reg.pushManager.getSubscription() : null;
}

// Asks for permission, subscribes this browser with the server's key and stores the
// subscription on the server; false when the viewer or the browser said no.
async function startPush() {
  if ((await Notification.requestPermission()) !== "granted") return false;
  if (!canPush()) return true;
  const { public_key } = await api("GET", "/api/v1/push/key");
  const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) });
  await api("POST", PUSH_PATH, sub.toJSON());
  return true;
}

// Removes this browser's subscription, here and on the server.
async function stopPush() {
  const sub = await currentPush();
  if (!sub) return;
  await api("DELETE", PUSH_PATH, { endpoint: sub.endpoint }).catch(() => {});
  await sub.unsubscribe();
}

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
  const allow = el("button", { id: "bell-allow", type: "button", class: "small", hidden: !("Notification" in window) || Notification.permission === "denied" }, "Browser alerts");
  let pushing = false;
  const label = () => {
    allow.textContent = pushing ? "Browser alerts: on" : "Browser alerts";
    allow.setAttribute("aria-pressed", String(pushing));
  };
  currentPush().then((sub) => {
    pushing = !!sub;
    label();
  }, () => {});
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
    try {
      if (pushing) await stopPush();
      else await startPush();
    } catch {
      // A browser without a push service (or one that refused): page notifications still work.
    }
    pushing = !!(await currentPush().catch(() => null));
    allow.hidden = Notification.permission === "denied";
    label();
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
    // With Web Push on, the service worker shows it (once, even with the page open).
    if ("Notification" in window && Notification.permission === "granted" && !pushing) {
      const shown = new Notification("livefront", { body: text(n), tag: `lf-${n.id}` });
      shown.onclick = () => window.open(`/watch/${encodeURIComponent(n.stream_id)}`, "_self");
    }
  });
  // A reader that fell behind reloads the feed.
  events.addEventListener("lagged", () => load().catch(() => {}));
}

window.addEventListener("livefront:session", mount);
(currentSession() ? Promise.resolve() : loadSession()).then(mount, () => {});
