// Recommendations (svc_recs): shown when the service answers, an honest empty
// state when it is not built or not running yet.
import { get, type ApiError } from "./api";
import { emptyState, errorBox, h, itemImage, money, mount } from "./dom";
import type { Recommendation } from "./shop";

interface RecsResponse {
  recommendations?: Recommendation[];
  modelVersion?: string;
  fallback?: boolean;
}

export function recsBlock(title: string, path: string): HTMLElement {
  const box = h("section", { class: "recs", "aria-label": title, "aria-busy": "true" }, h("h2", {}, title), "Loading…");
  get<RecsResponse>(path, { page_size: 8 })
    .then((resp) => {
      box.removeAttribute("aria-busy");
      const recs = resp.recommendations ?? [];
      if (!recs.length) {
        mount(box, h("h2", {}, title), emptyState("No recommendations yet", "They appear once the model has been trained on enough activity."));
        return;
      }
      mount(box, h("h2", {}, title),
        resp.fallback ? h("p", { class: "muted" }, "Popular picks (not personalised yet)") : null,
        h("ul", { class: "rec-list" }, recs.map((r) =>
          h("li", {}, itemImage(r.title || r.itemId, r.imageUrl),
            h("a", { href: `#/item/${encodeURIComponent(r.itemId)}` }, r.title || r.itemId),
            r.price ? h("div", { class: "price" }, money(r.price)) : null,
            r.reason ? h("div", { class: "muted" }, r.reason) : null))));
    })
    .catch((err: ApiError) => {
      box.removeAttribute("aria-busy");
      if (err.status === 401) {
        mount(box, h("h2", {}, title), emptyState("Log in to see recommendations"));
      } else if (err.unavailable || err.status === 404) {
        mount(box, h("h2", {}, title), emptyState("Recommendations are not available yet",
          "The recommendation service is not running on this shop; nothing is hidden from you."));
      } else {
        mount(box, h("h2", {}, title), errorBox(err, "Recommendations failed"));
      }
    });
  return box;
}
