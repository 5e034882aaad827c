import type { Logger } from "../ports/logger.js";

export interface ConsoleLoggerOptions {
  /** `json`: one object per line, for log shippers. `pretty`: for people. */
  format: "json" | "pretty";
  /** Drop `info` lines (e.g. per-request access logs). */
  quiet?: boolean;
  write?: (line: string) => void;
  /** Fields on every line, before the caller's (e.g. which worker process wrote it). */
  fields?: Record<string, unknown>;
}

/** Logs to stderr. Fields are ids, codes and timings: callers never pass secrets. */
export function createConsoleLogger(options: ConsoleLoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log =
    (level: string) =>
    (message: string, own: Record<string, unknown> = {}) => {
      if (level === "info" && options.quiet) return;
      const fields = options.fields === undefined ? own : { ...options.fields, ...own };
      if (options.format === "json") {
        write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }));
        return;
      }
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      write(
        `${level === "info" ? "" : `${level.toUpperCase()} `}${message}${extra ? ` ${extra}` : ""}`,
      );
    };
  return { info: log("info"), warn: log("warn"), error: log("error") };
}
