import { randomBytes } from "node:crypto";

/**
 * A new unguessable identifier: a short prefix naming what it is, then 128 bits
 * from the operating system's CSPRNG, base64url-encoded.
 */
export function newId(prefix: "req" | "jti"): string {
  return `${prefix}_${randomBytes(16).toString("base64url")}`;
}
