import { useSyncExternalStore } from "react";
import * as Dialog from "@radix-ui/react-dialog";
import { onSettingsChange, screenReaderMode, setScreenReaderMode } from "../lib/settings";
import { SHORTCUTS } from "../lib/shortcuts";

interface Props {
  open: boolean;
  onOpenChange(open: boolean): void;
}

const kbd = "rounded border border-slate-600 bg-slate-800 px-1.5 py-0.5 font-mono text-xs text-slate-100";

/** `?`: the keyboard shortcuts, and the accessibility settings. */
export function ShortcutsDialog({ open, onOpenChange }: Props) {
  const screenReader = useSyncExternalStore(onSettingsChange, screenReaderMode);
  return (
    <Dialog.Root open={open} onOpenChange={onOpenChange}>
      <Dialog.Portal>
        <Dialog.Overlay className="fixed inset-0 z-40 bg-black/60" />
        <Dialog.Content
          data-testid="shortcuts"
          className="fixed top-1/2 left-1/2 z-50 max-h-[90vh] w-[min(32rem,calc(100vw-2rem))] -translate-x-1/2 -translate-y-1/2 space-y-4 overflow-y-auto rounded-2xl border border-slate-700 bg-slate-900 p-6 text-slate-100 shadow-2xl"
        >
          <div className="flex items-center justify-between">
            <Dialog.Title className="text-lg font-semibold">Keyboard shortcuts</Dialog.Title>
            <Dialog.Close aria-label="Close" className="text-slate-300 hover:text-white">
              ×
            </Dialog.Close>
          </div>
          <Dialog.Description className="text-sm text-slate-300">
            Outside a terminal, press <kbd className={kbd}>Alt</kbd> and the key. Inside a terminal every key goes to
            the program (<kbd className={kbd}>Alt</kbd>+<kbd className={kbd}>N</kbd> is Meta-n there): press{" "}
            <kbd className={kbd}>Ctrl</kbd>+<kbd className={kbd}>]</kbd> first, then the key. Pressing{" "}
            <kbd className={kbd}>Ctrl</kbd>+<kbd className={kbd}>]</kbd> twice sends one to the program.
          </Dialog.Description>
          <table className="w-full text-sm">
            <thead>
              <tr className="text-left text-xs text-slate-300">
                <th className="pb-1 font-medium">Outside a terminal</th>
                <th className="pb-1 font-medium">In a terminal</th>
                <th className="pb-1 font-medium">Does</th>
              </tr>
            </thead>
            <tbody>
              {SHORTCUTS.map((s) => (
                <tr key={s.key} className="border-t border-slate-800">
                  <td className="py-1.5">
                    {s.key === "?" ? (
                      <kbd className={kbd}>?</kbd>
                    ) : (
                      <>
                        <kbd className={kbd}>Alt</kbd>+<kbd className={kbd}>{s.key}</kbd>
                      </>
                    )}
                  </td>
                  <td className="py-1.5">
                    <kbd className={kbd}>Ctrl</kbd>+<kbd className={kbd}>]</kbd> <kbd className={kbd}>{s.key}</kbd>
                  </td>
                  <td className="py-1.5 text-slate-200">{s.does}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <label className="flex items-start gap-2 text-sm text-slate-200">
            <input
              type="checkbox"
              checked={screenReader}
              onChange={(e) => setScreenReaderMode(e.target.checked)}
              className="mt-0.5"
            />
            <span>
              Screen reader mode for terminals: output is read out as it arrives, and the screen can be read line by
              line.
            </span>
          </label>
        </Dialog.Content>
      </Dialog.Portal>
    </Dialog.Root>
  );
}
