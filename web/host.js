// The host's controls of one running stream, shared by the studio (/studio) and the go-live page
// (/studio/go-live/{id}): signing in with the creator token, the product focus buttons and the
// chat as host (post, delete, ban) over the stream's live channel.
import { el, api, loadSession, signIn, signOut, liveChannel } from "/assets/common.js";

function message(text) {
  return el("p", { class: "hint" }, text);
}

/** The creator's session, or null after showing the sign-in form in `box`; `then` runs once a
 * creator signed in there. */
export async function creatorSession(box, then, note) {
  const session = await loadSession();
  if (session && session.role === "creator") return session;
  signInForm(box, then, note);
  return null;
}

/** The sign-in form (the token goes in the request body only, then lives as the cookie). */
export function signInForm(box, then, note) {
  const token = el("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-label": "Creator token" });
  const status = message(note || "");
  const form = el("form", { id: "signin", class: "card-form" }, el("h1", {}, "Creator studio"), el("label", {}, "Creator token ", token), el("button", { type: "submit" }, "Sign in"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await signIn(token.value.trim());
      if (s.role !== "creator") {
        await signOut();
        throw new Error("That is not a creator token.");
      }
      then();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  box.replaceChildren(form);
  token.focus();
}

/** One button per carousel product (and "Clear focus"): a tap focuses it for every viewer.
 * `buttons` is the row, `status` says why a tap failed. */
export function focusControls(id, products) {
  const buttons = el("div", { id: "focus-buttons", class: "buttons" });
  const status = message("");
  async function focus(pid) {
    try {
      await api("PUT", `/api/v1/streams/${id}/focus`, { product_id: pid });
      for (const b of buttons.querySelectorAll(".focus-btn")) b.classList.toggle("focused", b.dataset.productId === pid);
      status.textContent = "";
      controls.focused = pid;
    } catch (err) {
      status.textContent = err.message;
    }
  }
  for (const p of products) {
    buttons.append(el("button", { type: "button", class: "focus-btn", "data-product-id": p.id, onclick: () => focus(p.id) }, `Focus: ${p.title}`));
  }
  buttons.append(el("button", { type: "button", id: "clear-focus", onclick: () => focus(null) }, "Clear focus"));
  const controls = { buttons, status, focused: null };
  return controls;
}

/** The chat as the host: the messages (with Delete, and Ban for viewers), a box to write in,
 * and the stream's live channel; every event also goes to `onEvent`. `close()` ends it. */
export function hostChat(id, onEvent) {
  const list = el("ul", { id: "studio-chat", class: "chat" });
  const status = message("");
  const input = el("input", { id: "studio-chat-input", maxlength: 500, "aria-label": "Chat as host", autocomplete: "off" });
  const form = el("form", { class: "inline" }, input, el("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) live.send({ type: "chat_message", text: input.value.trim() });
    input.value = "";
  });
  const show = (text) => (status.textContent = text);
  const live = liveChannel(id, (ev) => {
    onEvent?.(ev);
    if (ev.type === "chat_message" && !list.querySelector(`li[data-id="${Number(ev.id)}"]`)) {
      const li = el("li", { "data-id": ev.id, class: `msg ${ev.role}` }, el("strong", {}, ev.user), " ", el("span", { class: "text" }, ev.text), " ");
      li.append(el("button", { type: "button", class: "small", onclick: () => api("DELETE", `/api/v1/streams/${id}/chat/${ev.id}`).catch((e) => show(e.message)) }, "Delete"));
      if (ev.role === "viewer") li.append(el("button", { type: "button", class: "small", onclick: () => api("POST", "/api/v1/me/chat/bans", { user: ev.user }).then(() => show(`@${ev.user} is banned.`)).catch((e) => show(e.message)) }, "Ban"));
      list.append(li);
      list.scrollTop = list.scrollHeight;
    } else if (ev.type === "message_deleted") list.querySelector(`li[data-id="${Number(ev.id)}"]`)?.remove();
    else if (ev.type === "error") show(ev.message);
  });
  return { list, form, status, close: () => live.close() };
}
