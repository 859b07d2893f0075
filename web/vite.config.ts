import { defineConfig } from "vite";

// The storefront is served by the edge at `/` next to the REST API, so every
// API call is same-origin (`/v1/...`). `npm run dev` proxies the API to a
// running edge (ECOM_EDGE_URL, default http://127.0.0.1:8080).
export default defineConfig({
  base: "/",
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, emptyOutDir: true },
  server: {
    proxy: {
      "/v1": process.env.ECOM_EDGE_URL ?? "http://127.0.0.1:8080",
      "/healthz": process.env.ECOM_EDGE_URL ?? "http://127.0.0.1:8080",
    },
  },
});
