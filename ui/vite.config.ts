// Vite builds the frontend into `dist/`, which the Tauri shell embeds (`src-tauri`,
// `frontendDist`); vitest runs the screen tests in jsdom over mocked Tauri IPC.
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tauri serves the files itself; relative asset paths work under its custom protocol.
  base: "./",
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { target: "safari15", outDir: "dist", emptyOutDir: true },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
