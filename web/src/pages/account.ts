import { get, post, requestId, type ApiError } from "../api";
import { clearFormError, dateTime, emptyState, enumLabel, errorBox, field, formData, formError, h, mount, setTitle } from "../dom";
import { navigate } from "../router";
import { session } from "../session";
import { addressText, type Address } from "../shop";

interface LoginResponse {
  accessToken: string;
  userId: string;
  role: string;
  expiresInSeconds: string | number;
}

async function logIn(email: string, password: string): Promise<void> {
  const r = await post<LoginResponse>("/v1/auth:login", { email, password });
  session.start(r.accessToken, r.userId, r.role, email, Number(r.expiresInSeconds));
}

function afterLogin(params: URLSearchParams, fallback: string): void {
  const next = params.get("next") ?? "";
  navigate(next.startsWith("#/") ? next : fallback);
}

const input = (name: string, type: string, label: string, extra: Record<string, string | number | boolean> = {}) =>
  field(label, h("input", { name, type, "data-field": name, ...extra }));

export function loginPage(main: HTMLElement, params: URLSearchParams): void {
  setTitle("Log in");
  const form = h("form", { class: "card", onsubmit: async (e: Event) => {
    e.preventDefault();
    const d = formData(form);
    clearFormError(form);
    try {
      await logIn(d.email, d.password);
      afterLogin(params, "#/");
    } catch (err) {
      formError(form, err, "Log in failed");
    }
  } },
    h("div", { class: "form-error" }),
    input("email", "email", "Email", { autocomplete: "username", required: true }),
    input("password", "password", "Password", { autocomplete: "current-password", required: true }),
    h("button", { type: "submit", class: "primary" }, "Log in"));
  mount(main, h("h1", {}, "Log in"), form,
    h("p", {}, "New here? ", h("a", { href: `#/signup${params.toString() ? `?${params}` : ""}` }, "Create an account")));
}

export function signupPage(main: HTMLElement, params: URLSearchParams): void {
  setTitle("Sign up");
  // No `required` attributes: the API's own validation names each bad field.
  const form = h("form", { class: "card", novalidate: true, onsubmit: async (e: Event) => {
    e.preventDefault();
    const d = formData(form);
    clearFormError(form);
    try {
      await post("/v1/users", { email: d.email, password: d.password, name: d.name, phone: d.phone, requestId: requestId() });
      await logIn(d.email, d.password);
      afterLogin(params, "#/account");
    } catch (err) {
      formError(form, err, "Sign up failed");
    }
  } },
    h("div", { class: "form-error" }),
    input("name", "text", "Name", { autocomplete: "name" }),
    input("email", "email", "Email", { autocomplete: "email" }),
    input("phone", "tel", "Mobile number", { autocomplete: "tel" }),
    input("password", "password", "Password (at least 8 characters)", { autocomplete: "new-password" }),
    h("button", { type: "submit", class: "primary" }, "Create account"));
  mount(main, h("h1", {}, "Create your account"), form);
}

/** Profile and addresses. */
export async function accountPage(main: HTMLElement, params: URLSearchParams): Promise<void> {
  setTitle("Your account");
  const list = h("section", { "aria-live": "polite", "aria-label": "Saved addresses" }, "Loading…");
  const profile = h("p", {});
  const form = h("form", { class: "card", novalidate: true, onsubmit: async (e: Event) => {
    e.preventDefault();
    const d = formData(form);
    clearFormError(form);
    try {
      await post<Address>("/v1/users/me/addresses", { requestId: requestId(), address: {
        name: d.name, lines: [d.line1, d.line2].filter(Boolean), landmark: d.landmark, city: d.city,
        state: d.state, pincode: d.pincode, phone: d.phone } });
      session.pincode = d.pincode;
      form.reset();
      await load();
      if (params.get("next")?.startsWith("#/")) navigate(params.get("next")!);
    } catch (err) {
      formError(form, err, "The address was not saved");
    }
  } },
    h("div", { class: "form-error" }),
    input("name", "text", "Full name", { autocomplete: "name" }),
    field("Address line 1", h("input", { name: "line1", type: "text", "data-field": "lines", autocomplete: "address-line1" })),
    input("line2", "text", "Address line 2 (optional)", { autocomplete: "address-line2" }),
    input("landmark", "text", "Landmark (optional)"),
    input("city", "text", "City", { autocomplete: "address-level2" }),
    input("state", "text", "State", { autocomplete: "address-level1" }),
    input("pincode", "text", "Pincode", { inputmode: "numeric", maxlength: 6, autocomplete: "postal-code" }),
    input("phone", "tel", "Phone", { autocomplete: "tel" }),
    h("button", { type: "submit", class: "primary" }, "Save address"));

  const load = async () => {
    try {
      const [user, resp] = await Promise.all([
        get<{ name?: string; email?: string; role?: string }>("/v1/users/me"),
        get<{ addresses?: Address[] }>("/v1/users/me/addresses"),
      ]);
      mount(profile, `${user.name ?? ""} · ${user.email ?? ""} · ${enumLabel(user.role, "ROLE_").toLowerCase()}`);
      const addresses = resp.addresses ?? [];
      const def = addresses.find((a) => a.isDefault);
      if (def?.pincode && !session.pincode) session.pincode = def.pincode;
      mount(list, addresses.length
        ? h("ul", { class: "addresses" }, addresses.map((a) => h("li", { "data-address-id": a.addressId ?? "" },
            addressText(a), a.isDefault ? h("span", { class: "badge" }, "default") : null)))
        : emptyState("No saved addresses", "Add one below to check out."));
    } catch (err) {
      mount(list, errorBox(err, "Your account cannot be shown"));
    }
  };
  mount(main, h("h1", {}, "Your account"), profile, h("h2", {}, "Addresses"), list, h("h2", {}, "Add an address"), form,
    h("button", { type: "button", onclick: () => { session.end(); navigate("#/"); } }, "Log out"));
  await load();
}

interface Notification {
  notificationId: string;
  channel?: string;
  subject?: string;
  body?: string;
  recipient?: string;
  status?: string;
  createTime?: string;
  orderId?: string;
}

export async function notificationsPage(main: HTMLElement): Promise<void> {
  setTitle("Notifications");
  const body = h("section", { "aria-live": "polite", "aria-busy": "true" }, "Loading…");
  mount(main, h("h1", {}, "Notifications"), body);
  try {
    const resp = await get<{ notifications?: Notification[] }>("/v1/users/me/notifications", { page_size: 50 });
    body.removeAttribute("aria-busy");
    const items = resp.notifications ?? [];
    mount(body, items.length
      ? h("ol", { class: "inbox" }, items.map((n) => h("li", { "data-notification-id": n.notificationId },
          h("p", {}, h("span", { class: "badge" }, enumLabel(n.channel, "CHANNEL_")), " ", h("strong", {}, n.subject || "(no subject)"),
            h("span", { class: "muted" }, ` · ${dateTime(n.createTime)} · to ${n.recipient ?? ""} · ${enumLabel(n.status, "NOTIFICATION_STATUS_")}`),
            n.orderId ? [" · ", h("a", { href: `#/order/${encodeURIComponent(n.orderId)}` }, `order ${n.orderId}`)] : null),
          // The body is text from the API: shown as text, line breaks kept by CSS.
          h("pre", { class: "message" }, n.body ?? ""))))
      : emptyState("No notifications yet", "Order confirmations and updates appear here."));
  } catch (err) {
    body.removeAttribute("aria-busy");
    const e = err as ApiError;
    mount(body, e.unavailable
      ? emptyState("Notifications are not available yet", "The notification service is not running on this shop.")
      : errorBox(err, "Your notifications cannot be shown"));
  }
}
