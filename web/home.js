// /: the home rows (live now, featured, one per category, upcoming).
import { el, $, api, streamRow } from "/assets/common.js";

const app = $("#app");
try {
  const home = await api("GET", "/api/v1/home");
  app.replaceChildren(
    streamRow("Live now", home.live, "Nobody is live right now."),
    home.featured.length ? streamRow("Featured", home.featured, "") : "",
    ...home.categories.map((c) => streamRow(c.category, c.streams, "")),
    streamRow("Upcoming", home.upcoming ?? [], "Nothing scheduled yet."),
  );
} catch (err) {
  app.replaceChildren(el("p", { class: "error" }, err.message));
}
