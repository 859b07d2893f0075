import { get, post, requestId, seg } from "../api";
import { dateTime, emptyState, enumLabel, errorBox, field, h, money, mount, setTitle, type Money, type PbDate, shortDate } from "../dom";
import { addressText, type Address } from "../shop";
import type { Cart } from "./cart";

export interface Order {
  orderId: string;
  state: string;
  lines?: { itemId: string; quantity: number; title?: string; lineTotal?: Money; promisedDate?: PbDate; warehouseId?: string }[];
  shippingAddress?: Address;
  total?: Money;
  itemCount?: number;
  payment?: { paymentId?: string; status?: string; declineCode?: string; refundedAmount?: Money };
  cancelReason?: string;
  cancelNote?: string;
  archived?: boolean;
  expiresAt?: string;
  createTime?: string;
  placeTime?: string;
}

const TOKENS: [string, string][] = [
  ["tok_success", "Test card: succeeds"],
  ["tok_decline", "Test card: declined"],
  ["tok_timeout", "Test card: gateway never answers"],
  ["tok_late_success", "Test card: succeeds after the hold expired"],
];

export const orderState = (o: Order) => enumLabel(o.state, "ORDER_STATE_");
const paymentState = (o: Order) => enumLabel(o.payment?.status, "PAYMENT_STATUS_");
const cancelReason = (o: Order) => enumLabel(o.cancelReason, "CANCEL_REASON_").replace(/_/g, " ").toLowerCase();

function stateBadge(o: Order): HTMLElement {
  const s = orderState(o);
  return h("span", { class: `badge state-${s.toLowerCase()}`, "data-state": s }, s);
}

/** "Hold expires in 9:42", ticking; "Hold expired" once past. */
function holdCountdown(o: Order): HTMLElement {
  const el = h("span", { class: "hold", "data-expires-at": o.expiresAt ?? "" });
  if (!o.expiresAt || orderState(o) !== "CREATED") return el;
  const until = new Date(o.expiresAt).getTime();
  const tick = () => {
    if (!el.isConnected && el.dataset.started) return;
    el.dataset.started = "1";
    const left = Math.round((until - Date.now()) / 1000);
    el.textContent = left > 0
      ? `Stock held for you: expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
      : "The hold has expired";
    if (left > 0) setTimeout(tick, 1000);
  };
  tick();
  return el;
}

function orderSummary(o: Order): HTMLElement {
  return h("div", { class: "order", "data-order-id": o.orderId },
    h("p", {}, "Order ", h("code", {}, o.orderId), " ", stateBadge(o), o.archived ? h("span", { class: "badge muted" }, "archived") : null),
    h("ul", {}, (o.lines ?? []).map((l) => h("li", {}, `${l.quantity} × ${l.title || l.itemId} `, money(l.lineTotal),
      l.promisedDate?.year ? h("span", { class: "muted" }, ` · by ${shortDate(l.promisedDate)}`) : null))),
    h("p", {}, "Total ", h("strong", {}, money(o.total)),
      o.payment?.status ? h("span", { class: "muted" }, ` · payment ${paymentState(o)}`) : null,
      o.payment?.declineCode ? h("span", { class: "bad" }, ` (${o.payment.declineCode})`) : null,
      o.payment?.refundedAmount && Number(o.payment.refundedAmount.units) > 0 ? h("span", {}, ` · refunded ${money(o.payment.refundedAmount)}`) : null),
    orderState(o) === "CANCELLED" ? h("p", { class: "bad" }, `Cancelled: ${cancelReason(o)}`, o.cancelNote ? ` (${o.cancelNote})` : "") : null,
    o.shippingAddress ? h("p", { class: "muted" }, `Ship to ${addressText(o.shippingAddress)}`) : null,
    holdCountdown(o));
}

export async function checkoutPage(main: HTMLElement): Promise<void> {
  setTitle("Checkout");
  const body = h("section", { "aria-busy": "true" }, "Loading…");
  mount(main, h("h1", {}, "Checkout"), body);
  let addresses: Address[] = [];
  let cart: Cart;
  try {
    [cart, addresses] = await Promise.all([
      get<Cart>("/v1/users/me/cart"),
      get<{ addresses?: Address[] }>("/v1/users/me/addresses").then((r) => r.addresses ?? []),
    ]);
  } catch (err) {
    mount(body, errorBox(err, "Checkout cannot start"));
    return;
  }
  body.removeAttribute("aria-busy");
  if (!(cart.lines ?? []).length) {
    mount(body, emptyState("Your cart is empty", "Add something to your cart before checking out."));
    return;
  }
  if (!addresses.length) {
    mount(body, emptyState("No delivery address yet"), h("a", { class: "button", href: "#/account?next=%23%2Fcheckout" }, "Add an address"));
    return;
  }
  const form = h("form", { onsubmit: (e: Event) => { e.preventDefault(); void placeOrder(); } },
    h("div", { class: "form-error" }),
    h("fieldset", {}, h("legend", {}, "Deliver to"),
      addresses.map((a, i) => h("label", { class: "radio" },
        h("input", { type: "radio", name: "address", value: a.addressId ?? "", checked: a.isDefault || (i === 0 && !addresses.some((x) => x.isDefault)), "data-field": "address_id" }),
        ` ${addressText(a)}`))),
    h("p", {}, `${cart.itemCount ?? 0} items, total `, h("strong", {}, money(cart.total))),
    h("button", { type: "submit", class: "primary" }, "Place order"));
  mount(body, form);

  const key = requestId(); // one key per checkout attempt: a double click creates one order
  const placeOrder = async () => {
    const addressId = (form.querySelector<HTMLInputElement>("input[name=address]:checked"))?.value;
    try {
      const order = await post<Order>("/v1/orders", { fromCart: true, addressId, requestId: key });
      location.hash = `#/order/${encodeURIComponent(order.orderId)}`;
    } catch (err) {
      mount(form.querySelector(".form-error")!, errorBox(err, "The order was not placed"));
    }
  };
}

/** One order: pay it with a test token, watch it, cancel it. */
export async function orderPage(main: HTMLElement, orderId: string): Promise<void> {
  setTitle("Order");
  const view = h("section", { "aria-live": "polite" });
  const status = h("div", { role: "status", class: "status" });
  mount(main, h("h1", {}, "Your order"), status, view);
  let polling = false;

  const render = (o: Order) => {
    const state = orderState(o);
    const actions: HTMLElement[] = [];
    // A pending payment is still being decided: no second payment meanwhile.
    if (state === "CREATED" && o.payment?.status !== "PAYMENT_STATUS_PENDING") {
      const token = h("select", { name: "paymentToken", "data-field": "payment_token" }, TOKENS.map(([v, l]) => h("option", { value: v }, l)));
      const payKey = requestId();
      actions.push(h("form", { class: "pay", onsubmit: async (e: Event) => {
        e.preventDefault();
        const btn = (e.target as HTMLFormElement).querySelector("button")!;
        btn.disabled = true;
        mount(status, "Paying…");
        try {
          const paid = await post<Order>(`/v1/orders/${seg(o.orderId)}:pay`, { paymentToken: token.value, requestId: payKey });
          render(paid);
          announce(paid);
        } catch (err) {
          btn.disabled = false;
          mount(status, errorBox(err, "Payment failed"));
        }
      } }, h("div", { class: "form-error" }), field("Pay with", token), h("button", { type: "submit", class: "primary" }, "Pay now")));
    }
    if (state === "CREATED" || state === "PLACED") actions.push(cancelButton(o, (c) => { render(c); announce(c); }, status));
    mount(view, orderSummary(o), actions, h("p", {}, h("a", { href: "#/orders" }, "All your orders")));
    if (state === "CREATED" && o.payment?.status === "PAYMENT_STATUS_PENDING" && !polling) void poll(o);
  };
  const announce = (o: Order) => {
    const s = orderState(o);
    if (s === "PLACED") mount(status, h("strong", { class: "ok" }, "Order PLACED. Thank you!"));
    else if (s === "CANCELLED") mount(status, h("strong", { class: "bad" }, `Order CANCELLED: ${cancelReason(o)}`));
    else if (o.payment?.status === "PAYMENT_STATUS_PENDING") mount(status, "Payment pending: waiting for the bank's answer…");
    else mount(status, `Order ${s}`);
  };
  // A pending payment (tok_timeout) settles later: watch the order until it does.
  const poll = async (o: Order) => {
    polling = true;
    let current = o;
    while (orderState(current) === "CREATED" && view.isConnected) {
      await new Promise((r) => setTimeout(r, 2000));
      try {
        current = await get<Order>(`/v1/orders/${seg(o.orderId)}`);
      } catch {
        continue;
      }
    }
    polling = false;
    if (view.isConnected) {
      render(current);
      announce(current);
    }
  };
  try {
    const o = await get<Order>(`/v1/orders/${seg(orderId)}`);
    render(o);
    announce(o);
  } catch (err) {
    mount(view, errorBox(err, "This order cannot be shown"));
  }
}

function cancelButton(o: Order, done: (o: Order) => void, status: HTMLElement): HTMLElement {
  const key = requestId();
  return h("button", { type: "button", class: "danger", onclick: async (e: Event) => {
    if (!confirm(`Cancel order ${o.orderId}?`)) return;
    (e.target as HTMLButtonElement).disabled = true;
    try {
      done(await post<Order>(`/v1/orders/${seg(o.orderId)}:cancel`, { note: "cancelled from the storefront", requestId: key }));
    } catch (err) {
      (e.target as HTMLButtonElement).disabled = false;
      mount(status, errorBox(err, "The order was not cancelled"));
    }
  } }, "Cancel order");
}

/** Live and archived orders, one list, newest first. */
export async function ordersPage(main: HTMLElement, params: URLSearchParams): Promise<void> {
  setTitle("Orders");
  const body = h("section", { "aria-live": "polite", "aria-busy": "true" }, "Loading…");
  const status = h("div", { role: "status", class: "status" });
  mount(main, h("h1", {}, "Your orders"), status, body);
  try {
    const resp = await get<{ orders?: Order[]; nextPageToken?: string; archiveUnavailable?: boolean }>(
      "/v1/users/me/orders", { page_size: 20, page_token: params.get("page") });
    body.removeAttribute("aria-busy");
    const orders = resp.orders ?? [];
    mount(body,
      resp.archiveUnavailable ? h("p", { class: "note", role: "note" }, "Older (archived) orders cannot be shown right now; only recent orders are listed.") : null,
      orders.length ? h("ol", { class: "orders" }, orders.map((o) => h("li", {},
        h("a", { href: `#/order/${encodeURIComponent(o.orderId)}` }, `Placed ${dateTime(o.createTime)}`),
        orderSummary(o),
        orderState(o) === "CREATED" || orderState(o) === "PLACED"
          ? cancelButton(o, () => { void ordersPage(main, params); }, status) : null))) : emptyState("No orders yet"),
      resp.nextPageToken ? h("a", { class: "button", href: `#/orders?page=${encodeURIComponent(resp.nextPageToken)}` }, "Older orders") : null);
  } catch (err) {
    mount(body, errorBox(err, "Your orders cannot be shown"));
  }
}
