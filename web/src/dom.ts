// DOM building without innerHTML: every piece of API or user text becomes a
// text node (or an attribute set through the DOM), so it is never parsed as HTML.
import { ApiError } from "./api";

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's content. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export interface Money {
  currencyCode?: string;
  units?: string | number;
  nanos?: number;
}

export function money(m?: Money | null): string {
  if (!m) return "–";
  const value = Number(m.units ?? 0) + (m.nanos ?? 0) / 1e9;
  return new Intl.NumberFormat("en-IN", {
    style: "currency",
    currency: m.currencyCode || "INR",
  }).format(value);
}

export const moneyValue = (m?: Money | null) => Number(m?.units ?? 0) + (m?.nanos ?? 0) / 1e9;

export interface PbDate {
  year?: number;
  month?: number;
  day?: number;
}

/** "Thu 3 Dec" from a google.type.Date. */
export function shortDate(d?: PbDate | null): string {
  if (!d || !d.year) return "";
  const date = new Date(Date.UTC(d.year, (d.month ?? 1) - 1, d.day ?? 1));
  const wd = date.toLocaleDateString("en-GB", { weekday: "short", timeZone: "UTC" });
  const rest = date.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  return `${wd} ${rest}`;
}

export function dateTime(ts?: string | null): string {
  if (!ts) return "";
  const d = new Date(ts);
  return isNaN(d.getTime()) ? ts : d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

/** "ORDER_STATE_PLACED" -> "PLACED". */
export function enumLabel(value: string | undefined, prefix: string): string {
  return (value ?? "").replace(prefix, "") || "–";
}

/** An API error shown in full: message, code, reason and every bad field. */
export function errorBox(err: unknown, what = "That did not work"): HTMLElement {
  if (!(err instanceof ApiError)) {
    return h("div", { class: "error", role: "alert" }, h("strong", {}, what), h("p", {}, String(err)));
  }
  return h(
    "div",
    { class: "error", role: "alert", "data-code": err.codeName },
    h("strong", {}, `${what}: `),
    h("span", { class: "error-message" }, err.message),
    h("p", { class: "error-meta" }, `${err.codeName} (HTTP ${err.status})`,
      err.reason && err.reason !== err.codeName ? ` · ${err.reason}` : "", err.requestId ? ` · request ${err.requestId}` : ""),
    err.violations.length
      ? h("ul", { class: "violations" },
          err.violations.map((v) =>
            h("li", {}, h("code", { class: "field-name" }, v.field), ": ", v.description)))
      : null,
  );
}

/**
 * Show an error on a form: the box at the top, and each bad field marked on
 * its input (matched by the input's data-field, the API's field path).
 */
export function formError(form: HTMLFormElement, err: unknown, what?: string): void {
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  const slot = form.querySelector(".form-error") ?? form.insertBefore(h("div", { class: "form-error" }), form.firstChild);
  mount(slot, errorBox(err, what));
  if (err instanceof ApiError) {
    for (const v of err.violations) {
      const input = Array.from(form.querySelectorAll<HTMLElement>("[data-field]")).find((el) => {
        const f = el.dataset.field ?? "";
        return v.field === f || v.field.endsWith(`.${f}`) || v.field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()).endsWith(f);
      });
      if (input) {
        input.setAttribute("aria-invalid", "true");
        const id = `${input.id || "f"}-err`;
        input.setAttribute("aria-describedby", id);
        input.insertAdjacentElement("afterend", h("span", { class: "field-error", id }, v.description));
      }
    }
  }
}

export function clearFormError(form: HTMLFormElement): void {
  form.querySelector(".form-error")?.replaceChildren();
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
}

/** An honest "nothing here (yet)" block. */
export function emptyState(title: string, detail?: string): HTMLElement {
  return h("div", { class: "empty", role: "status" }, h("strong", {}, title), detail ? h("p", {}, detail) : null);
}

export function field(label: string, input: HTMLElement): HTMLElement {
  const id = input.id || `in-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export function formData(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  new FormData(form).forEach((v, k) => (out[k] = String(v).trim()));
  return out;
}

/** A placeholder image with a text alternative (items carry no pictures yet). */
export function itemImage(title: string, url?: string): HTMLElement {
  if (url && /^https?:\/\//.test(url)) {
    return h("img", { class: "thumb", src: url, alt: title, loading: "lazy", width: 96, height: 96 });
  }
  return h("div", { class: "thumb placeholder", role: "img", "aria-label": `${title} (no picture)` },
    (title.trim()[0] ?? "?").toUpperCase());
}

export function setTitle(title: string): void {
  document.title = `${title} · ecom`;
}
