// A choice kept in this browser (localStorage, nothing secret): the Changes panel's layout.

import { useCallback, useState } from "react";

export function useStoredChoice<T extends string>(key: string, choices: readonly T[], fallback: T): [T, (value: T) => void] {
  const [value, setValue] = useState<T>(() => {
    try {
      const stored = localStorage.getItem(key);
      return choices.includes(stored as T) ? (stored as T) : fallback;
    } catch {
      return fallback;
    }
  });
  const set = useCallback(
    (next: T) => {
      setValue(next);
      try {
        localStorage.setItem(key, next);
      } catch {
        // Storage disabled: the choice lasts until the reload.
      }
    },
    [key],
  );
  return [value, set];
}
