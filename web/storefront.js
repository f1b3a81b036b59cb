// /@{handle}: the creator card with the follow button, then live, upcoming and past livestreams.
import { el, $, api, loadSession, currentSession, streamRow } from "/assets/common.js";

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
      status.textContent = "Join a chat on a watch page to get a viewer name, then follow.";
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
  app.replaceChildren(
    el("section", { class: "creator-card" }, el("div", { class: "avatar", "aria-hidden": "true" }, handle.slice(0, 1).toUpperCase()), el("div", {}, el("h1", {}, `@${handle}`), followers), follow, status),
    streamRow("Live", s.live, "Not live right now."),
    streamRow("Upcoming", s.upcoming, "Nothing scheduled."),
    streamRow("Past livestreams", s.past, "No past livestreams yet."),
  );
}

render().catch((err) => app.replaceChildren(el("p", { class: "error" }, err.message)));
