// The signed-in person, fetched once per sign-in (GET /api/me) and shared through the query cache.

import { useQuery } from "@tanstack/react-query";
import { api } from "../lib/api";
import type { User } from "../lib/protocol";

export function useMe(): User | undefined {
  const { data } = useQuery({ queryKey: ["me"], queryFn: api.me, staleTime: 60_000 });
  return data;
}
