import "./style.css";
import { h, mount } from "./dom";
import { accountPage, loginPage, notificationsPage, signupPage } from "./pages/account";
import { cartPage, wishlistPage } from "./pages/cart";
import { itemPage } from "./pages/item";
import { checkoutPage, orderPage, ordersPage } from "./pages/orders";
import { searchPage } from "./pages/search";
import { currentRoute, navigate } from "./router";
import { session } from "./session";

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;

function renderNav(): void {
  const here = location.hash.split("?")[0] || "#/";
  const link = (href: string, label: string) =>
    h("a", { href, "aria-current": here === href ? "page" : null }, label);
  mount(nav,
    link("#/search", "Search"),
    session.loggedIn
      ? [link("#/cart", "Cart"), link("#/wishlist", "Wishlist"), link("#/orders", "Orders"),
         link("#/notifications", "Notifications"), link("#/account", "Account"),
         session.isAdmin ? link("#/ops", "Operations") : null,
         h("span", { class: "muted who" }, session.email ?? "")]
      : [link("#/login", "Log in"), link("#/signup", "Sign up")]);
}

// Pages that need a token send the visitor to log in first, then back.
const PRIVATE = new Set(["cart", "wishlist", "checkout", "orders", "order", "notifications", "account", "ops"]);

async function route(initial = false): Promise<void> {
  if (location.hash === "#main") return; // the skip link without script
  const { path, params } = currentRoute();
  const [page = "search", arg = ""] = path;
  renderNav();
  if (PRIVATE.has(page) && !session.loggedIn) {
    navigate(`#/login?next=${encodeURIComponent(location.hash)}`);
    return;
  }
  try {
    switch (page) {
      case "search": return await searchPage(main, params);
      case "item": return await itemPage(main, arg);
      case "cart": return await cartPage(main);
      case "wishlist": return await wishlistPage(main);
      case "checkout": return await checkoutPage(main);
      case "order": return await orderPage(main, arg);
      case "orders": return await ordersPage(main, params);
      case "notifications": return await notificationsPage(main);
      case "account": return await accountPage(main, params);
      case "login": return loginPage(main, params);
      case "signup": return signupPage(main, params);
      // The operations page and its chart library load only when an admin
      // opens it: shoppers never download them.
      case "ops": return await (await import("./pages/ops")).opsPage(main);
      default:
        mount(main, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to search")));
    }
  } finally {
    // Move focus to the new page for keyboard and screen-reader users (not
    // on the first load, where the skip link comes first).
    if (!initial) main.focus({ preventScroll: true });
  }
}

window.addEventListener("hashchange", () => void route());
session.onChange(renderNav);
// Never a blank page: an unexpected failure is shown where the page would be.
window.addEventListener("unhandledrejection", (e) => {
  mount(document.getElementById("flash")!, h("div", { class: "error" }, "Something went wrong: ", String(e.reason)));
});
// The skip link moves focus to the page's content without touching the route.
document.querySelector<HTMLAnchorElement>("a.skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});
void route(true);
