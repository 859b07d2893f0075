import { get, type ApiError } from "../api";
import { deliveryPromise, type DeliveryEstimate } from "../shop";
import { emptyState, errorBox, field, h, itemImage, money, mount, setTitle, type Money } from "../dom";
import { session } from "../session";
import { navigate } from "../router";

interface Hit {
  itemId: string;
  title: string;
  brand?: string;
  category?: string;
  price?: Money;
  listPrice?: Money;
  imageUrl?: string;
  delivery?: DeliveryEstimate;
}

interface SearchResponse {
  hits: Hit[];
  nextPageToken?: string;
  totalSize?: number;
  facets?: { field: string; values: { value: string; count: string | number }[] }[];
  pincode?: string;
  serviceabilityAvailable?: boolean;
  correctedQuery?: string;
}

const SORTS: [string, string][] = [
  ["SORT_RELEVANCE", "Relevance"],
  ["SORT_PRICE_ASC", "Price: low to high"],
  ["SORT_PRICE_DESC", "Price: high to low"],
  ["SORT_NEWEST", "Newest"],
];

/** #/search?q=&pincode=&category=&brand=&price=&attr=&sort=&page= */
export async function searchPage(main: HTMLElement, params: URLSearchParams): Promise<void> {
  const q = params.get("q") ?? "";
  const pincode = params.get("pincode") ?? session.pincode;
  setTitle(q ? `Search: ${q}` : "Search");

  const query = h("input", { type: "search", name: "q", value: q, placeholder: "Search phones, books…", "data-field": "query" });
  const pin = h("input", {
    type: "text", name: "pincode", value: pincode, inputmode: "numeric", pattern: "[0-9]{6}",
    maxlength: 6, placeholder: "6-digit pincode", "data-field": "pincode",
  });
  const sort = h("select", { name: "sort" }, SORTS.map(([v, label]) =>
    h("option", { value: v, selected: (params.get("sort") ?? "SORT_RELEVANCE") === v }, label)));
  const form = h("form", { class: "search-form", role: "search", onsubmit: (e: Event) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (query.value.trim()) next.set("q", query.value.trim());
    if (pin.value.trim()) next.set("pincode", pin.value.trim());
    session.pincode = pin.value.trim();
    if (sort.value !== "SORT_RELEVANCE") next.set("sort", sort.value);
    for (const key of ["category", "brand", "price", "attr"]) params.getAll(key).forEach((v) => next.append(key, v));
    navigate(`#/search?${next}`);
  } },
    field("Search", query), field("Deliver to pincode", pin), field("Sort by", sort),
    h("button", { type: "submit" }, "Search"));
  const results = h("section", { class: "results", "aria-live": "polite", "aria-busy": "true" }, "Searching…");
  const facets = h("aside", { class: "facets", "aria-label": "Filters" });
  mount(main, h("h1", {}, "Search"), form, h("div", { class: "search-layout" }, facets, results));
  sort.addEventListener("change", () => form.requestSubmit());

  const price = params.get("price") ?? "";
  const [minPrice, maxPrice] = price.split("-");
  try {
    const resp = await get<SearchResponse>("/v1/search", {
      query: q, pincode, category: params.get("category"), brands: params.getAll("brand"),
      min_price: minPrice, max_price: maxPrice, attribute_filters: params.getAll("attr"),
      sort: params.get("sort"), page_size: 20, page_token: params.get("page"),
    });
    renderFacets(facets, resp, params);
    renderHits(results, resp, pincode, params);
  } catch (err) {
    results.removeAttribute("aria-busy");
    mount(results, errorBox(err as ApiError, "Search failed"));
  }
}

const FACET_PARAM: Record<string, string> = { category: "category", brand: "brand", price: "price", attributes: "attr" };

function renderFacets(box: HTMLElement, resp: SearchResponse, params: URLSearchParams): void {
  const groups = (resp.facets ?? []).filter((f) => f.values.length).map((f) => {
    const key = FACET_PARAM[f.field] ?? f.field;
    const chosen = params.getAll(key);
    return h("fieldset", { class: "facet" }, h("legend", {}, f.field === "price" ? "Price (₹)" : f.field),
      f.values.map((v) => {
        const next = new URLSearchParams(params);
        const on = chosen.includes(v.value);
        next.delete("page");
        if (on) {
          next.delete(key);
          chosen.filter((c) => c !== v.value).forEach((c) => next.append(key, c));
        } else if (key === "brand" || key === "attr") next.append(key, v.value);
        else next.set(key, v.value);
        return h("a", { href: `#/search?${next}`, class: on ? "facet-value on" : "facet-value", "aria-pressed": String(on) },
          `${v.value} (${v.count})`);
      }));
  });
  mount(box, groups.length ? groups : null);
}

function renderHits(box: HTMLElement, resp: SearchResponse, pincode: string, params: URLSearchParams): void {
  box.removeAttribute("aria-busy");
  const notes: HTMLElement[] = [];
  if (resp.correctedQuery) {
    const fixed = new URLSearchParams(params);
    fixed.set("q", resp.correctedQuery);
    notes.push(h("p", { class: "note" }, "Did you mean ", h("a", { href: `#/search?${fixed}` }, resp.correctedQuery), "?"));
  }
  if (pincode && resp.serviceabilityAvailable === false) {
    notes.push(h("p", { class: "note" }, "Delivery promises are unavailable right now."));
  }
  if (!resp.hits.length) {
    mount(box, notes, emptyState("No items found", "Try other words or remove a filter."));
    return;
  }
  const next = new URLSearchParams(params);
  if (resp.nextPageToken) next.set("page", resp.nextPageToken);
  mount(box,
    notes,
    h("p", { class: "muted" }, `${resp.totalSize ?? resp.hits.length} items`, resp.pincode ? ` · delivering to ${resp.pincode}` : ""),
    h("ol", { class: "hits" }, resp.hits.map((hit) =>
      h("li", { class: "hit", "data-item-id": hit.itemId },
        itemImage(hit.title, hit.imageUrl),
        h("div", {},
          h("a", { class: "hit-title", href: `#/item/${encodeURIComponent(hit.itemId)}` }, hit.title),
          h("div", { class: "muted" }, [hit.brand, hit.category].filter(Boolean).join(" · ")),
          h("div", { class: "price" }, money(hit.price),
            hit.listPrice && Number(hit.listPrice.units) > Number(hit.price?.units ?? 0)
              ? h("s", { class: "muted" }, ` ${money(hit.listPrice)}`) : null),
          deliveryPromise(hit.delivery, resp.pincode || pincode))))),
    resp.nextPageToken ? h("a", { class: "button", href: `#/search?${next}` }, "Next page") : null);
}
