// Shapes of the API answers the pages use (canonical proto3 JSON) and small
// views shared by several pages.
import { h, shortDate, type Money, type PbDate } from "./dom";

export interface DeliveryEstimate {
  pincode?: string;
  deliverable?: boolean;
  etaDays?: number;
  promisedDate?: PbDate;
  warehouseId?: string;
  reason?: string;
}

export interface Address {
  addressId?: string;
  name?: string;
  lines?: string[];
  landmark?: string;
  city?: string;
  state?: string;
  pincode?: string;
  phone?: string;
  isDefault?: boolean;
}

export interface Recommendation {
  itemId: string;
  score?: number;
  reason?: string;
  title?: string;
  price?: Money;
  imageUrl?: string;
}

const REASONS: Record<string, string> = {
  UNDELIVERABLE_REASON_UNKNOWN_PINCODE: "unknown pincode",
  UNDELIVERABLE_REASON_NOT_SERVICEABLE: "no warehouse serves it",
  UNDELIVERABLE_REASON_OUT_OF_STOCK: "out of stock",
  UNDELIVERABLE_REASON_DISRUPTED: "deliveries disrupted",
  UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE: "delivery estimate unavailable right now",
};

/** "Get it by Thu 3 Dec" or "Not deliverable to 781026 (reason)". */
export function deliveryPromise(d: DeliveryEstimate | undefined, pincode: string): HTMLElement {
  if (!pincode) return h("span", { class: "promise muted" }, "Enter a pincode to see delivery");
  if (!d) return h("span", { class: "promise muted" }, "Delivery estimate unavailable");
  if (d.deliverable) {
    const by = shortDate(d.promisedDate);
    return h("span", { class: "promise ok", "data-deliverable": "true" },
      by ? `Get it by ${by}` : `Delivered in ${d.etaDays ?? "?"} days`);
  }
  const why = REASONS[d.reason ?? ""];
  return h("span", { class: "promise bad", "data-deliverable": "false" },
    `Not deliverable to ${d.pincode || pincode}`, why ? ` (${why})` : "");
}

export function addressText(a: Address): string {
  return [a.name, ...(a.lines ?? []), a.landmark, a.city, a.state, a.pincode].filter(Boolean).join(", ");
}
