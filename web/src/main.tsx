import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import "./index.css";
import { App } from "./App";
import { SharePage } from "./components/SharePage";
import { ToastProvider } from "./components/Toasts";
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
            <App />
          </BrowserRouter>
        )}
      </ToastProvider>
    </StrictMode>,
  );
}
