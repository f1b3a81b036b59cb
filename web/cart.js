// "Add to cart" on a product card (watch page and embedded player). A tap is counted by the
// server, which answers with what the shop needs: the product, the attribution to pass on at
// checkout, the viewer's redeemed promo code and the filled-in shop.cart_url. The page then fires
// `livefront:add-to-cart` on its window and, when it is framed, posts the same to the page around
// it; the watch page opens the shop's cart link (when one is configured) in a new tab.
import { el, api } from "/assets/common.js";

export const CART_EVENT = "livefront:add-to-cart";

/** The origins the embedded player may post to: `*`, or the allowed framers ('self' = ours). */
export function parentOrigins() {
  const raw = document.querySelector("#app")?.dataset.parentOrigins || "*";
  return raw.split(" ").filter(Boolean).map((o) => (o === "'self'" ? location.origin : o));
}

export function cartButton(streamId, product, { embedded = false } = {}) {
  const button = el("button", { type: "button", class: "cart", "data-product-id": product.id }, "Add to cart");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await api("POST", `/api/v1/streams/${encodeURIComponent(streamId)}/cart-adds`, { product_id: product.id, embedded });
      const detail = { product: r.product, stream: r.stream_id, attribution: r.attribution, promo_code: r.promo_code, cart_url: r.cart_url };
      window.dispatchEvent(new CustomEvent(CART_EVENT, { detail }));
      if (window.parent !== window) {
        for (const origin of parentOrigins()) window.parent.postMessage({ type: CART_EVENT, ...detail }, origin);
      } else if (r.cart_url) {
        window.open(r.cart_url, "_blank", "noopener");
      }
      button.textContent = "Added ✓";
    } catch (err) {
      button.textContent = err.status === 429 ? "Slow down" : "Try again";
    } finally {
      setTimeout(() => {
        button.disabled = false;
        button.textContent = "Add to cart";
      }, 1500);
    }
  });
  return button;
}
