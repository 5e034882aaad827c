/**
 * Operational logging. Callers pass ids and codes, never secrets: nothing that
 * reaches a logger may contain a token, key or sensitive payload field.
 */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
