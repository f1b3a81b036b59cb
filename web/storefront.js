// /@{handle}: the creator card with the follow button, then live, upcoming and past livestreams.
import { el, $, api, loadSession, currentSession, signIn, streamRow } from "/assets/common.js";

const app = $("#app");
const handle = decodeURIComponent(location.pathname.slice(2));

async function render() {
  await loadSession();
  const s = await api("GET", `/api/v1/creators/${encodeURIComponent(handle)}/storefront`);
  const followers = el("span", { id: "followers" }, `${s.creator.followers} followers`);
  const status = el("span", { class: "hint" });
  const follow = el("button", { type: "button", id: "follow" }, "Follow");
  let following = false;
  const me = currentSession();
  if (me?.role === "viewer") {
    const mine = await api("GET", "/api/v1/me/following").catch(() => ({ following: [] }));
    following = mine.following.some((f) => f.handle === handle);
  }
  const paint = () => (follow.textContent = following ? "Following ✓" : "Follow");
  paint();
  follow.addEventListener("click", async () => {
    if (currentSession()?.role !== "viewer") {
      nameForm.hidden = false;
      nameInput.focus();
      return;
    }
    try {
      await api(following ? "DELETE" : "PUT", `/api/v1/creators/${encodeURIComponent(handle)}/follow`);
      following = !following;
      paint();
      const card = await api("GET", `/api/v1/creators/${encodeURIComponent(handle)}`);
      followers.textContent = `${card.followers} followers`;
    } catch (err) {
      status.textContent = err.message;
    }
  });
  // Following needs a viewer name: pick one here (it is a viewer account, kept in the session).
  const nameInput = el("input", { id: "viewer-handle", placeholder: "your_name", pattern: "[a-z0-9_]{2,32}", required: true, "aria-label": "Your name" });
  const nameForm = el("form", { id: "viewer-signin", class: "inline", hidden: true }, nameInput, el("button", { type: "submit" }, "Pick name and follow"));
  nameForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const v = await api("POST", "/api/v1/viewers", { handle: nameInput.value.trim() });
      await signIn(v.token);
      nameForm.hidden = true;
      follow.click();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  app.replaceChildren(
    el("section", { class: "creator-card" }, el("div", { class: "avatar", "aria-hidden": "true" }, handle.slice(0, 1).toUpperCase()), el("div", {}, el("h1", {}, `@${handle}`), followers), follow, nameForm, status),
    streamRow("Live", s.live, "Not live right now."),
    streamRow("Upcoming", s.upcoming, "Nothing scheduled."),
    streamRow("Past livestreams", s.past, "No past livestreams yet."),
  );
}

render().catch((err) => app.replaceChildren(el("p", { class: "error" }, err.message)));
