// The operations page (admins): streaming reports as charts, the health of
// every service as a client sees it through the edge, stock editing.
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement,
  PointElement, Tooltip, type ChartConfiguration,
} from "chart.js";
import { ApiError, call, get, put, requestId, seg } from "../api";
import { emptyState, errorBox, field, h, money, moneyValue, mount, setTitle, type Money } from "../dom";
import { session } from "../session";

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);

// One cheap REST call per service, through the edge exactly as any client:
// "up" is any answer from the service itself (even NOT_FOUND for a made-up
// id); "down" is the edge's UNAVAILABLE/timeout or no route at all.
const PROBES: [string, string][] = [
  ["edge", "/healthz"],
  ["users", "/v1/users/me"],
  ["catalog", "/v1/items/ops-health-probe"],
  ["search", "/v1/search?query=ops-health-probe&page_size=1"],
  ["tat (serviceability)", "/v1/warehouses?page_size=1"],
  ["cart", "/v1/users/me/cart"],
  ["inventory", "/v1/inventory/ops-health-probe"],
  ["orders", "/v1/users/me/orders?page_size=1"],
  ["recs", "/v1/categories/ops-health-probe/recommendations?page_size=1"],
  ["notify", "/v1/notifications?page_size=1"],
  ["analytics", "/v1/reports/funnel?window=1h"],
];

const charts: Chart[] = [];

export async function opsPage(main: HTMLElement): Promise<void> {
  setTitle("Operations");
  charts.splice(0).forEach((c) => c.destroy());
  if (!session.isAdmin) {
    mount(main, h("h1", {}, "Operations"), emptyState("Admins only", "Log in with an admin account to see the operations page."));
    return;
  }
  const health = h("section", { "aria-labelledby": "h-health" }, h("h2", { id: "h-health" }, "Service health"), "Checking…");
  const reports = h("section", { "aria-labelledby": "h-reports" }, h("h2", { id: "h-reports" }, "Streaming reports"));
  const stock = h("section", { "aria-labelledby": "h-stock" }, h("h2", { id: "h-stock" }, "Stock"));
  mount(main, h("h1", {}, "Operations"), health, reports, stock);
  stockEditor(stock);
  await Promise.all([healthTable(health), reportCharts(reports)]);
}

async function healthTable(box: HTMLElement): Promise<void> {
  const rows = await Promise.all(PROBES.map(async ([name, path]) => {
    const [p, q] = path.split("?");
    const started = performance.now();
    let state = "up";
    let detail = "200";
    try {
      await call("GET", p, { query: Object.fromEntries(new URLSearchParams(q ?? "")) });
    } catch (err) {
      const e = err as ApiError;
      detail = `${e.status} ${e.codeName}`;
      if (e.status === 404 && e.message.startsWith("no such route")) state = "not deployed";
      else if (e.unavailable || e.code === 4 || e.code === 13) state = "down";
    }
    const ms = Math.round(performance.now() - started);
    return h("tr", { "data-service": name, "data-health": state },
      h("th", { scope: "row" }, name), h("td", { class: state === "up" ? "ok" : "bad" }, state),
      h("td", {}, detail), h("td", {}, `${ms} ms`), h("td", {}, h("code", {}, path)));
  }));
  mount(box, h("h2", { id: "h-health" }, "Service health"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Service", "State", "Answer", "Latency", "Probe"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)),
    h("button", { type: "button", onclick: () => void healthTable(box) }, "Check again"));
}

interface Win { startTime?: string; endTime?: string }

function chartBlock(title: string, config: ChartConfiguration, table: HTMLElement): HTMLElement {
  const canvas = h("canvas", { role: "img", "aria-label": `${title} chart; the same numbers are in the table below` });
  const block = h("figure", { class: "chart" }, h("figcaption", {}, title), h("div", { class: "canvas-box" }, canvas),
    h("details", {}, h("summary", {}, `${title}: data table`), table));
  queueMicrotask(() => charts.push(new Chart(canvas, config)));
  return block;
}

const tableOf = (head: string[], rows: (string | number)[][]) =>
  h("table", {}, h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, String(c)))))));

const hhmm = (ts?: string) => (ts ? new Date(ts).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }) : "");

async function reportCharts(box: HTMLElement): Promise<void> {
  const windowSel = h("select", { name: "window" }, h("option", { value: "1h" }, "hourly windows"), h("option", { value: "1m" }, "minute windows"));
  const area = h("div", { class: "charts", "aria-live": "polite" });
  mount(box, h("h2", { id: "h-reports" }, "Streaming reports"), field("Window", windowSel), area);
  const load = async () => {
    charts.splice(0).forEach((c) => c.destroy());
    const w = windowSel.value;
    try {
      const [top, revenue, funnel, zero] = await Promise.all([
        get<{ items?: { itemId: string; category?: string; units?: string; revenue?: Money }[]; asOf?: string }>("/v1/reports/top-items", { window: w, limit: 10 }),
        get<{ rows?: { window?: Win; category?: string; netRevenue?: Money; netOrders?: string }[] }>("/v1/reports/category-revenue", { window: w }),
        get<{ windows?: { window?: Win; searches?: string; cartAdds?: string; ordersCreated?: string; ordersPlaced?: string }[] }>("/v1/reports/funnel", { window: w }),
        get<{ searches?: { query: string; count?: string }[] }>("/v1/reports/zero-result-searches", { window: w, limit: 10 }),
      ]);
      const blocks: HTMLElement[] = [];
      const items = top.items ?? [];
      blocks.push(items.length ? chartBlock("Top items (units, latest window)", {
        type: "bar",
        data: { labels: items.map((i) => i.itemId), datasets: [{ label: "units", data: items.map((i) => Number(i.units ?? 0)), backgroundColor: "#2f6fb0" }] },
        options: { indexAxis: "y", animation: false, maintainAspectRatio: false },
      }, tableOf(["Item", "Category", "Units", "Revenue"], items.map((i) => [i.itemId, i.category ?? "", i.units ?? "0", money(i.revenue)])))
        : emptyState("Top items: no sales in the latest window yet"));

      const rows = revenue.rows ?? [];
      const starts = [...new Set(rows.map((r) => r.window?.startTime ?? ""))].sort();
      const cats = [...new Set(rows.map((r) => r.category ?? ""))];
      const palette = ["#2f6fb0", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085"];
      blocks.push(rows.length ? chartBlock("Net revenue by category over time (₹)", {
        type: "line",
        data: { labels: starts.map(hhmm), datasets: cats.map((c, i) => ({
          label: c, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length],
          data: starts.map((s) => moneyValue(rows.find((r) => r.category === c && r.window?.startTime === s)?.netRevenue)),
        })) },
        options: { animation: false, maintainAspectRatio: false },
      }, tableOf(["Window start", "Category", "Net revenue", "Net orders"], rows.map((r) => [r.window?.startTime ?? "", r.category ?? "", money(r.netRevenue), r.netOrders ?? "0"])))
        : emptyState("Category revenue: no orders in range yet"));

      const steps = funnel.windows ?? [];
      const sum = (k: "searches" | "cartAdds" | "ordersCreated" | "ordersPlaced") => steps.reduce((a, s) => a + Number(s[k] ?? 0), 0);
      const totals = [sum("searches"), sum("cartAdds"), sum("ordersCreated"), sum("ordersPlaced")];
      const labels = ["Searches", "Cart adds", "Orders created", "Orders placed"];
      blocks.push(steps.length ? chartBlock("Funnel (all windows in range)", {
        type: "bar",
        data: { labels, datasets: [{ label: "events", data: totals, backgroundColor: "#27ae60" }] },
        options: { animation: false, maintainAspectRatio: false },
      }, tableOf(["Step", "Count"], labels.map((l, i) => [l, totals[i]]))) : emptyState("Funnel: no activity in range yet"));

      const zs = zero.searches ?? [];
      blocks.push(h("div", {}, h("h3", {}, "Searches with no results"),
        zs.length ? tableOf(["Query", "Count"], zs.map((z) => [z.query, z.count ?? "0"])) : emptyState("None in the latest window")));
      mount(area, blocks);
    } catch (err) {
      const e = err as ApiError;
      mount(area, e.unavailable
        ? emptyState("Reports are not available yet", "The analytics service is not running on this shop.")
        : errorBox(err, "Reports failed"));
    }
  };
  windowSel.addEventListener("change", () => void load());
  await load();
}

interface WarehouseStock { warehouseId: string; available?: string; reserved?: string; updateTime?: string }

function stockEditor(box: HTMLElement): void {
  const itemId = h("input", { type: "text", name: "item_id", "data-field": "item_id", placeholder: "item id" });
  const out = h("div", { "aria-live": "polite" });
  const load = async () => {
    const id = itemId.value.trim();
    if (!id) return;
    try {
      const [stock, whs] = await Promise.all([
        get<{ warehouses?: WarehouseStock[]; totalAvailable?: string; totalReserved?: string }>(`/v1/inventory/${seg(id)}`),
        get<{ warehouses?: { warehouseId: string; city?: string }[] }>("/v1/warehouses", { page_size: 100 }).catch(() => ({ warehouses: [] })),
      ]);
      const rows = new Map((stock.warehouses ?? []).map((w) => [w.warehouseId, w]));
      for (const w of whs.warehouses ?? []) if (!rows.has(w.warehouseId)) rows.set(w.warehouseId, { warehouseId: w.warehouseId });
      const status = h("div", { role: "status", class: "status" });
      mount(out,
        h("p", {}, `Total available ${stock.totalAvailable ?? 0}, reserved ${stock.totalReserved ?? 0}`),
        status,
        h("table", {}, h("thead", {}, h("tr", {}, ["Warehouse", "Available", "Reserved", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, [...rows.values()].map((w) => {
            const avail = h("input", { type: "number", min: 0, value: w.available ?? "0", "aria-label": `Available at ${w.warehouseId}`, "data-field": "available" });
            return h("tr", { "data-warehouse-id": w.warehouseId }, h("th", { scope: "row" }, w.warehouseId), h("td", {}, avail), h("td", {}, w.reserved ?? "0"),
              h("td", {}, h("button", { type: "button", onclick: async () => {
                try {
                  const saved = await put<WarehouseStock>(`/v1/inventory/${seg(id)}/warehouses/${seg(w.warehouseId)}`, { available: avail.value, requestId: requestId() });
                  mount(status, h("span", { class: "ok" }, `${w.warehouseId}: ${saved.available} available`));
                } catch (err) {
                  mount(status, errorBox(err, `Stock at ${w.warehouseId} not saved`));
                }
              } }, "Save")));
          }))));
    } catch (err) {
      mount(out, errorBox(err, "Stock cannot be shown"));
    }
  };
  mount(box, h("h2", { id: "h-stock" }, "Stock"),
    h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); void load(); } }, field("Item id", itemId), h("button", { type: "submit" }, "Show stock")),
    out);
}
