// What kind of screen the dashboard is on, for choices a phone should make differently: attach
// in watch mode (a phone must not resize a desktop's session by merely looking), no keyboard
// shortcut hints, a key bar under the terminal.

/** A phone or a small touch screen: a coarse pointer, or a window narrower than 768 px. */
export function isPhone(): boolean {
  if (typeof window === "undefined" || typeof window.matchMedia !== "function") return false;
  return window.matchMedia("(pointer: coarse)").matches || window.matchMedia("(max-width: 767px)").matches;
}
