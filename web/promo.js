// The promo banner of the watch page: the offer, copy, and one-tap "Redeem" for a signed-in
// viewer, which then shows the discount that applies (and the code travels with add-to-cart).
import { el, api, currentSession, copy } from "/assets/common.js";

export function renderPromo(box, streamId, offer) {
  box.hidden = false;
  const code = el("code", { id: "promo-code" }, offer.code);
  const status = el("span", { id: "promo-status", class: "hint" });
  const redeem = el("button", { id: "promo-redeem", type: "button" }, "Redeem");
  const redeemed = (r) => {
    redeem.hidden = true;
    status.textContent = `Redeemed: ${r.discount} off at checkout`;
    box.classList.add("redeemed");
  };
  redeem.addEventListener("click", async () => {
    if (currentSession()?.role !== "viewer") {
      status.textContent = "Pick a chat name first to redeem.";
      return;
    }
    redeem.disabled = true;
    try {
      const r = await api("POST", `/api/v1/promos/${encodeURIComponent(offer.code)}/redeem?stream_id=${encodeURIComponent(streamId)}`);
      redeemed(r);
    } catch (err) {
      status.textContent = err.message;
      redeem.disabled = false;
    }
  });
  const copyButton = el("button", { type: "button", onclick: (e) => copy(e.target, offer.code) }, "Copy code");
  box.replaceChildren(el("span", {}, `${offer.discount} off: ${offer.description} — `), code, " ", redeem, " ", copyButton, " ", status);
  // Already redeemed by this viewer: say so at once.
  if (currentSession()?.role === "viewer") {
    api("GET", `/api/v1/streams/${encodeURIComponent(streamId)}/viewer`)
      .then((s) => s.viewer?.redemption?.code?.toUpperCase() === offer.code.toUpperCase() && redeemed(s.viewer.redemption))
      .catch(() => {});
  }
}
