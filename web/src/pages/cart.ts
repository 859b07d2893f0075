import { del, get, post, requestId, seg } from "../api";
import { emptyState, errorBox, field, h, itemImage, money, mount, setTitle, type Money } from "../dom";
import { recsBlock } from "../recs";
import { session } from "../session";
import { deliveryPromise, type DeliveryEstimate } from "../shop";

interface CartLine {
  itemId: string;
  quantity: number;
  title?: string;
  imageUrl?: string;
  unitPrice?: Money;
  lineTotal?: Money;
  available?: boolean;
  delivery?: DeliveryEstimate;
}

export interface Cart {
  lines?: CartLine[];
  total?: Money;
  itemCount?: number;
  pincode?: string;
  priced?: boolean;
  allDeliverable?: boolean;
}

export async function cartPage(main: HTMLElement): Promise<void> {
  setTitle("Cart");
  const pin = h("input", { type: "text", name: "pincode", value: session.pincode, inputmode: "numeric", maxlength: 6, "data-field": "pincode" });
  const body = h("section", { "aria-live": "polite", "aria-busy": "true" }, "Loading…");
  const status = h("div", { role: "status", class: "status" });
  const load = async () => {
    try {
      session.pincode = pin.value.trim();
      render(await get<Cart>("/v1/users/me/cart", { pincode: pin.value.trim() }));
    } catch (err) {
      mount(body, errorBox(err, "Your cart cannot be shown"));
    }
  };
  const change = async (what: string, run: () => Promise<Cart>) => {
    try {
      render(await run());
      mount(status, what);
    } catch (err) {
      mount(status, errorBox(err, "The cart was not changed"));
    }
  };
  const render = (cart: Cart) => {
    body.removeAttribute("aria-busy");
    const lines = cart.lines ?? [];
    if (!pin.value && cart.pincode) pin.value = cart.pincode;
    if (!lines.length) {
      mount(body, emptyState("Your cart is empty", "Search for something you like and add it here."));
      return;
    }
    mount(body,
      h("table", { class: "cart" },
        h("caption", { class: "sr-only" }, "Cart lines"),
        h("thead", {}, h("tr", {}, ["Item", "Price", "Quantity", "Total", "Delivery", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, lines.map((l) => {
          const title = l.title || l.itemId;
          return h("tr", { "data-item-id": l.itemId },
            h("td", {}, itemImage(title, l.imageUrl), h("a", { href: `#/item/${encodeURIComponent(l.itemId)}` }, title),
              l.available === false ? h("div", { class: "bad" }, "No longer available") : null),
            h("td", {}, money(l.unitPrice)),
            h("td", {}, String(l.quantity),
              h("button", { type: "button", class: "small", "aria-label": `One more ${title}`,
                onclick: () => void change(`Added one more ${title}.`, () => post<Cart>(`/v1/users/me/cart/items`,
                  { itemId: l.itemId, quantity: 1, requestId: requestId() })) }, "+1")),
            h("td", { class: "line-total" }, money(l.lineTotal)),
            h("td", {}, deliveryPromise(l.delivery, cart.pincode || pin.value)),
            h("td", {}, h("button", { type: "button", class: "small", "aria-label": `Remove ${title}`,
              onclick: () => void change(`Removed ${title}.`, () => del<Cart>(`/v1/users/me/cart/items/${seg(l.itemId)}`, { request_id: requestId() })) }, "Remove")));
        }))),
      h("p", { class: "total" }, `Total (${cart.itemCount ?? 0} items): `, h("strong", { id: "cart-total" }, money(cart.total)),
        cart.priced === false ? h("span", { class: "muted" }, " (prices unavailable right now)") : null),
      cart.pincode && cart.allDeliverable === false
        ? h("p", { class: "bad" }, `Some lines cannot be delivered to ${cart.pincode}.`) : null,
      h("a", { class: "button primary", href: "#/checkout" }, "Check out"));
  };
  mount(main, h("h1", {}, "Cart"),
    h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); void load(); } },
      field("Deliver to pincode", pin), h("button", { type: "submit" }, "Update delivery")),
    status, body,
    session.userId ? recsBlock("Recommended for you", "/v1/users/me/recommendations") : null);
  await load();
}

interface WishlistItem {
  itemId: string;
  title?: string;
  imageUrl?: string;
  price?: Money;
  available?: boolean;
}

export async function wishlistPage(main: HTMLElement): Promise<void> {
  setTitle("Wishlist");
  const body = h("section", { "aria-live": "polite" }, "Loading…");
  mount(main, h("h1", {}, "Wishlist"), body);
  const render = (items: WishlistItem[]) => {
    if (!items.length) return mount(body, emptyState("Your wishlist is empty"));
    mount(body, h("ul", { class: "hits" }, items.map((i) => h("li", { class: "hit" },
      itemImage(i.title || i.itemId, i.imageUrl),
      h("div", {}, h("a", { href: `#/item/${encodeURIComponent(i.itemId)}` }, i.title || i.itemId),
        h("div", { class: "price" }, money(i.price)),
        h("button", { type: "button", class: "small", onclick: async () => {
          try {
            const w = await del<{ items?: WishlistItem[] }>(`/v1/users/me/wishlist/items/${seg(i.itemId)}`, { request_id: requestId() });
            render(w.items ?? []);
          } catch (err) {
            body.prepend(errorBox(err, "Could not remove"));
          }
        } }, "Remove"))))));
  };
  try {
    render((await get<{ items?: WishlistItem[] }>("/v1/users/me/wishlist")).items ?? []);
  } catch (err) {
    mount(body, errorBox(err, "Your wishlist cannot be shown"));
  }
}
