import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// On every address and any host name, so preview URLs and /port/5173 reach it.
export default defineConfig({
  plugins: [react()],
  server: { host: "0.0.0.0", port: 5173, strictPort: true, allowedHosts: true },
});
