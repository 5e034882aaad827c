import type { CommandIo } from "../../command.js";

const WIDTH = 30;
const REDRAW_MS = 100;

export interface ProgressBar {
  /** `fraction` in 0..1 (clamped); `detail` follows the bar. */
  update(fraction: number, detail: string): void;
  /** Clears the bar's line. */
  done(): void;
}

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal: piped
 * or logged output never gets carriage returns, and stdout stays clean for data.
 */
export function createProgressBar(io: CommandIo, label: string): ProgressBar {
  if (!io.stderrIsTty) return { update() {}, done() {} };
  let last = 0;
  let drawn = false;
  return {
    update(fraction, detail) {
      const now = Date.now();
      if (now - last < REDRAW_MS && fraction < 1) return;
      last = now;
      const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
      const filled = Math.round(f * WIDTH);
      const bar = `${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}`;
      io.stderr(
        `\r${label} [${bar}] ${String(Math.floor(f * 100)).padStart(3)}% ${detail}\u001b[K`,
      );
      drawn = true;
    },
    done() {
      if (drawn) io.stderr("\r\u001b[K");
    },
  };
}
