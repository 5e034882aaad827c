import type { Logger } from "../../src/ports/logger.js";

/** One line given to a {@link capturingLogger}. */
export interface CapturedLogLine {
  readonly level: "info" | "warn" | "error";
  readonly message: string;
  readonly fields: Record<string, unknown> | undefined;
}

/**
 * A logger that keeps every line it is given in `lines`, in order, for tests
 * that look for a warning or check that no secret was logged.
 */
export function capturingLogger(): { logger: Logger; lines: CapturedLogLine[] } {
  const lines: CapturedLogLine[] = [];
  const logger: Logger = {
    info: (message, fields) => lines.push({ level: "info", message, fields }),
    warn: (message, fields) => lines.push({ level: "warn", message, fields }),
    error: (message, fields) => lines.push({ level: "error", message, fields }),
  };
  return { logger, lines };
}
