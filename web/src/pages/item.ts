import { get, post, requestId, seg } from "../api";
import { errorBox, field, h, itemImage, money, mount, setTitle, type Money } from "../dom";
import { recsBlock } from "../recs";
import { session } from "../session";
import { deliveryPromise, type DeliveryEstimate } from "../shop";

interface Item {
  itemId: string;
  title: string;
  description?: string;
  category?: string;
  brand?: string;
  price?: Money;
  listPrice?: Money;
  attributes?: Record<string, unknown>;
  imageUrls?: string[];
  state?: string;
}

export async function itemPage(main: HTMLElement, itemId: string): Promise<void> {
  mount(main, h("p", { "aria-busy": "true" }, "Loading…"));
  let item: Item;
  try {
    item = await get<Item>(`/v1/items/${seg(itemId)}`);
  } catch (err) {
    setTitle("Item");
    mount(main, h("h1", {}, "Item"), errorBox(err, "This item cannot be shown"));
    return;
  }
  setTitle(item.title);
  const status = h("div", { role: "status", "aria-live": "polite", class: "status" });
  const pin = h("input", { type: "text", name: "pincode", value: session.pincode, inputmode: "numeric", maxlength: 6, "data-field": "pincode" });
  const qty = h("input", { type: "number", name: "quantity", min: 1, max: 10, value: 1, "data-field": "quantity" });
  const promise = h("div", { class: "serviceability", "aria-live": "polite" });

  const check = async () => {
    const pincode = pin.value.trim();
    session.pincode = pincode;
    if (!pincode) {
      mount(promise, deliveryPromise(undefined, ""));
      return;
    }
    try {
      const resp = await get<{ estimate?: DeliveryEstimate }>("/v1/serviceability", {
        item_id: item.itemId, pincode, quantity: qty.value,
      });
      const e = resp.estimate;
      mount(promise, deliveryPromise(e, pincode),
        e?.deliverable && e.warehouseId ? h("span", { class: "muted" }, ` · ships from ${e.warehouseId}, ${e.etaDays} days`) : null);
    } catch (err) {
      mount(promise, errorBox(err, "Delivery check failed"));
    }
  };

  const needLogin = () => {
    mount(status, h("span", {}, "Please ", h("a", { href: `#/login?next=${encodeURIComponent(location.hash)}` }, "log in"), " first."));
  };
  const addToCart = async () => {
    if (!session.loggedIn) return needLogin();
    try {
      const cart = await post<{ itemCount?: number }>("/v1/users/me/cart/items", {
        itemId: item.itemId, quantity: Number(qty.value), requestId: requestId(),
      });
      mount(status, h("span", { class: "ok" }, `Added to cart (${cart.itemCount ?? 0} items). `), h("a", { href: "#/cart" }, "Go to cart"));
    } catch (err) {
      mount(status, errorBox(err, "Could not add to cart"));
    }
  };
  const addToWishlist = async () => {
    if (!session.loggedIn) return needLogin();
    try {
      await post("/v1/users/me/wishlist/items", { itemId: item.itemId, requestId: requestId() });
      mount(status, h("span", { class: "ok" }, "Saved to your wishlist. "), h("a", { href: "#/wishlist" }, "See wishlist"));
    } catch (err) {
      mount(status, errorBox(err, "Could not save to wishlist"));
    }
  };

  const attrs = Object.entries(item.attributes ?? {});
  mount(main,
    h("article", { class: "item" },
      itemImage(item.title, item.imageUrls?.[0]),
      h("div", {},
        h("h1", {}, item.title),
        h("p", { class: "muted" }, [item.brand, item.category].filter(Boolean).join(" · ")),
        h("p", { class: "price big" }, money(item.price)),
        item.description ? h("p", {}, item.description) : null,
        attrs.length ? h("dl", { class: "attrs" }, attrs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])) : null,
        h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); void check(); } },
          field("Deliver to pincode", pin), field("Quantity", qty), h("button", { type: "submit" }, "Check delivery")),
        promise,
        h("div", { class: "actions" },
          h("button", { type: "button", class: "primary", onclick: () => void addToCart() }, "Add to cart"),
          h("button", { type: "button", onclick: () => void addToWishlist() }, "Add to wishlist")),
        status)),
    recsBlock("Similar items", `/v1/items/${seg(item.itemId)}/recommendations`),
    item.category ? recsBlock(`Popular in ${item.category}`, `/v1/categories/${seg(item.category)}/recommendations`) : null);
  void check();
}
