import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { QueryClientProvider } from "@tanstack/react-query";
import "./index.css";
import { App } from "./App";
import { SharePage } from "./components/SharePage";
import { ToastProvider } from "./components/Toasts";
import { queryClient } from "./lib/queryClient";
import { isSharePath, takeShareToken } from "./lib/share";

// Before anything else: a share link's token leaves the address bar (and history).
const share = isSharePath(window.location.pathname) ? { token: takeShareToken(window.location, window.history) } : null;

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <ToastProvider>
        {share ? (
          <SharePage token={share.token} />
        ) : (
          <BrowserRouter>
            <QueryClientProvider client={queryClient}>
              <App />
            </QueryClientProvider>
          </BrowserRouter>
        )}
      </ToastProvider>
    </StrictMode>,
  );
}
