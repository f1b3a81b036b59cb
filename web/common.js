// Shared by every page: building elements (text always through text nodes, never innerHTML),
// the JSON API with the session cookie and its CSRF token, and the stream's live socket.

/** An element with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const $ = (selector, root = document) => root.querySelector(selector);

let session = null;

/** The browser's session `{role, handle, csrf}` or null. */
export async function loadSession() {
  const r = await fetch("/api/v1/session", { credentials: "same-origin" });
  const body = r.ok ? await r.json() : null;
  session = body && body.role ? body : null;
  return session;
}

export function currentSession() {
  return session;
}

/** Exchanges an API token for the HttpOnly session cookie (the token goes in the body only). */
export async function signIn(token) {
  const r = await fetch("/api/v1/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!r.ok) throw new Error("That token was not accepted.");
  session = await r.json();
  // The bell and the follow buttons show for the new session.
  window.dispatchEvent(new Event("livefront:session"));
  return session;
}

export async function signOut() {
  await api("DELETE", "/api/v1/session");
  session = null;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A JSON API call; writes carry the CSRF token. Throws ApiError on a non-2xx answer. */
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) throw new ApiError(r.status, data?.error?.message || `${r.status}`);
  return data;
}

/** The stream's live channel; reconnects after a drop until `close()`. Messages sent while it
 * is (re)connecting wait for the connection. */
export function liveChannel(streamId, onEvent) {
  let ws = null;
  let closed = false;
  let retry = 500;
  let pending = [];
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/streams/${encodeURIComponent(streamId)}/live`);
    ws = socket;
    socket.onopen = () => {
      retry = 500;
      for (const m of pending) socket.send(m);
      pending = [];
    };
    socket.onmessage = (m) => {
      try {
        onEvent(JSON.parse(m.data));
      } catch (e) {
        console.warn("live event", e);
      }
    };
    socket.onclose = () => {
      if (closed || socket !== ws) return;
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 15000);
    };
  };
  open();
  return {
    send: (msg) => {
      const text = JSON.stringify(msg);
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(text);
      else pending.push(text);
    },
    /** Reconnects at once, e.g. after signing in (the new connection carries the cookie). */
    reconnect: () => {
      const old = ws;
      ws = null;
      old?.close();
      open();
    },
    close: () => {
      closed = true;
      ws?.close();
    },
  };
}

export function money(price, currency) {
  return `${price} ${currency}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** Copies text and says so on the button for a moment. */
export async function copy(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  } catch {
    window.prompt("Copy this:", text);
  }
}

/** A row of stream cards (home, storefront). */
export function streamRow(title, streams, emptyText) {
  const list = el("ul", { class: "cards" });
  for (const s of streams) {
    const badge = s.state === "live" ? el("span", { class: "badge live" }, "LIVE") : null;
    list.append(
      el(
        "li",
        { class: "card" },
        el(
          "a",
          { href: `/watch/${encodeURIComponent(s.id)}` },
          // A poster once the stream was public on camera; scheduled ones (and streams public too
          // briefly for a poster) get a plain tile.
          s.thumbnail
            ? el("img", { src: `/api/v1/streams/${encodeURIComponent(s.id)}/thumbnail.jpg`, alt: "", loading: "lazy", class: "thumb" })
            : el("div", { class: "thumb placeholder", "aria-hidden": "true" }, s.state === "scheduled" ? "Soon" : ""),
          badge,
          el("span", { class: "title" }, s.title),
          el("span", { class: "meta" }, s.creator ? `@${s.creator}` : "", s.state === "scheduled" ? ` · ${when(s.scheduled_at)}` : "", s.state === "live" ? ` · ${s.viewers ?? 0} watching` : ""),
        ),
      ),
    );
  }
  return el("section", { class: "row" }, el("h2", {}, title), streams.length ? list : el("p", { class: "empty" }, emptyText));
}
