// /embed/{id}: the embeddable player for shops' own pages. Video, the product carousel following
// the host's focus, and "Add to cart", which posts `livefront:add-to-cart` {product, stream,
// attribution, promo_code, cart_url} to the page around it (see web/cart.js).
import { el, $, api, liveChannel, money } from "/assets/common.js";
import { play } from "/assets/player.js";
import { cartButton } from "/assets/cart.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
const app = $("#app");
const video = el("video", { id: "video", controls: true, muted: true, autoplay: true, playsinline: true });
video.muted = true;
const carousel = el("ul", { id: "carousel", class: "carousel", "aria-label": "Products" });
const status = el("p", { id: "embed-status", class: "hint" });
let player = null;

function focus(productId) {
  for (const li of carousel.children) li.classList.toggle("focused", li.dataset.productId === productId);
}

async function main() {
  let stream;
  try {
    stream = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  } catch {
    app.replaceChildren(el("p", { class: "notfound" }, "Not found"));
    return;
  }
  app.replaceChildren(el("div", { class: "video-box" }, video), el("p", { class: "title" }, stream.title), status, carousel);
  const products = await api("GET", `/api/v1/streams/${encodeURIComponent(id)}/products`).catch(() => ({ products: [] }));
  carousel.replaceChildren(
    ...products.products.map((p) =>
      el(
        "li",
        { "data-product-id": p.id, class: "product" },
        p.image_url ? el("img", { src: p.image_url, alt: "", loading: "lazy" }) : null,
        el("span", { class: "title" }, p.title),
        el("span", { class: "price" }, money(p.price, p.currency)),
        cartButton(id, p, { embedded: true }),
      ),
    ),
  );
  const start = () => {
    if (player) return;
    player = play(video, stream.playback.hls, { onCue: ({ productId }) => focus(productId) });
  };
  if (stream.playback.ready) start();
  else status.textContent = stream.state === "ended" ? "" : "Not live yet.";
  liveChannel(id, (ev) => {
    if (ev.type === "product_focused") focus(ev.product_id);
    if (ev.type === "stream_state" && ev.state === "live") {
      status.textContent = "";
      setTimeout(start, 3000);
    }
  });
}

main();
