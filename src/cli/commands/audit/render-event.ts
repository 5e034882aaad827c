import type { WritEvent } from "../../../sdk/client.js";
import { printable } from "../render-request.js";

function plain(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** One event on one line, for people: time, type, request, actor, then its facts. */
export function eventLine(event: WritEvent): string {
  const facts = Object.entries(event.data)
    .map(([k, v]) => `${k}=${plain(v)}`)
    .join(" ");
  return printable(
    `${event.time}  ${event.type.padEnd(22)} ${event.request_id || "-"}  ${event.actor.kind}:${event.actor.id}${facts ? `  ${facts}` : ""}`,
  );
}

export const CSV_HEADER = "id,time,type,request_id,actor_kind,actor_id,data";

/**
 * A CSV cell: always quoted. A cell a spreadsheet would run as a formula (it
 * starts with = + - @, a tab or a carriage return) gets a leading apostrophe:
 * reasons and comments come from agents and people, and a CSV export is opened
 * in spreadsheets.
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return `"${safe.replaceAll('"', '""')}"`;
}

export function csvRow(event: WritEvent): string {
  return [
    event.id,
    event.time,
    event.type,
    event.request_id,
    event.actor.kind,
    event.actor.id,
    JSON.stringify(event.data),
  ]
    .map(csvCell)
    .join(",");
}
