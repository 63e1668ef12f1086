// The dashboard's query cache (@tanstack/react-query) for server state fetched on demand: a
// workspace's changed files and diffs. Runners and sessions come live from /api/events instead.

import { QueryClient } from "@tanstack/react-query";
import { ApiError } from "./api";

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will answer the same again (no workspace, removed, a bad path): say it at once.
      retry: (failures, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && failures < 2,
      staleTime: 5_000,
    },
  },
});
