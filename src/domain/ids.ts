import { randomFillSync } from "node:crypto";

/** Bytes of randomness per id: 128 bits. */
const ID_BYTES = 16;

/**
 * Random bytes drawn from the OS CSPRNG a batch at a time: one call into the
 * CSPRNG per 256 ids rather than one per id (ids are minted on every request,
 * credential and event, and the call costs far more than the bytes). Every byte
 * is handed out once; a new batch replaces the old when it runs out.
 */
const pool = Buffer.alloc(ID_BYTES * 256);
let used = pool.length;

function randomId(): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString("base64url", used, used + ID_BYTES);
  used += ID_BYTES;
  return id;
}

/**
 * A new unguessable identifier: a short prefix naming what it is, then 128 bits
 * from the operating system's CSPRNG, base64url-encoded.
 */
export function newId(prefix: "req" | "jti"): string {
  return `${prefix}_${randomId()}`;
}
