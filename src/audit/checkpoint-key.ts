import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  sign,
} from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** The public form of the checkpoint key, as served at `GET /v1/audit/checkpoint-key`. */
export interface CheckpointPublicJwk {
  readonly kty: "OKP";
  readonly crv: "Ed25519";
  readonly x: string;
  readonly kid: string;
  readonly alg: "EdDSA";
  readonly use: "sig";
}

/** Signs checkpoints. The private key never leaves this object. */
export interface CheckpointSigner {
  /** RFC 7638 thumbprint of the public key; recorded in each checkpoint. */
  readonly keyId: string;
  readonly publicJwk: CheckpointPublicJwk;
  readonly publicKey: KeyObject;
  /** Ed25519 signature over `message`, base64url. */
  sign(message: Buffer): string;
}

/** Public keys that may have signed checkpoints, by key id. */
export type CheckpointKeys = ReadonlyMap<string, KeyObject>;

/** The key file: one Ed25519 key, kept apart from the JWT signing keys. */
interface StoredCheckpointKey {
  kid: string;
  alg: "EdDSA";
  created_at: string;
  private_jwk: JsonWebKey;
}

const B64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;

/** A checkpoint key file or public key that cannot be used; the message names why. */
export class CheckpointKeyError extends Error {
  override readonly name = "CheckpointKeyError";
}

/** RFC 7638 thumbprint of an Ed25519 public key given by its `x`. */
export function checkpointKeyId(x: string): string {
  // Members in lexicographic order, no whitespace: the RFC 7638 input for OKP keys.
  return createHash("sha256")
    .update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`)
    .digest("base64url");
}

function publicKeyFromX(x: string, source: string): KeyObject {
  if (!B64URL_32_BYTES.test(x)) {
    throw new CheckpointKeyError(`${source}: x is not a 32-byte base64url Ed25519 public key`);
  }
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}

function toSigner(stored: StoredCheckpointKey, source: string): CheckpointSigner {
  const jwk = stored.private_jwk;
  if (
    jwk.kty !== "OKP" ||
    jwk.crv !== "Ed25519" ||
    typeof jwk.x !== "string" ||
    typeof jwk.d !== "string" ||
    !B64URL_32_BYTES.test(jwk.d)
  ) {
    throw new CheckpointKeyError(`${source}: private_jwk is not an Ed25519 private key`);
  }
  const publicKey = publicKeyFromX(jwk.x, source);
  const privateKey = createPrivateKey({ key: jwk, format: "jwk" });
  // A file whose x does not belong to its d would sign checkpoints nobody can verify.
  const derived = createPublicKey(privateKey).export({ format: "jwk" });
  if (derived.x !== jwk.x) {
    throw new CheckpointKeyError(`${source}: the public part does not match the private key`);
  }
  const keyId = checkpointKeyId(jwk.x);
  return {
    keyId,
    publicKey,
    publicJwk: { kty: "OKP", crv: "Ed25519", x: jwk.x, kid: keyId, alg: "EdDSA", use: "sig" },
    sign: (message) => sign(null, message, privateKey).toString("base64url"),
  };
}

function parseStored(text: string, source: string): StoredCheckpointKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CheckpointKeyError(`${source} is not valid JSON`);
  }
  const stored = parsed as Partial<StoredCheckpointKey> | null;
  if (
    typeof stored !== "object" ||
    stored === null ||
    typeof stored.private_jwk !== "object" ||
    stored.private_jwk === null
  ) {
    throw new CheckpointKeyError(`${source} is not a writ checkpoint key file`);
  }
  return stored as StoredCheckpointKey;
}

/**
 * Loads the checkpoint signing key at `path`. With `create`, a missing file is made
 * with a fresh key (mode 0600 in a 0700 directory), as `writ dev` does; without it
 * a missing file is an error, so production never signs with a throwaway key.
 */
export async function loadCheckpointKey(
  path: string,
  options: { create: boolean; now?: Date },
): Promise<{ signer: CheckpointSigner; generated: boolean }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    if (!options.create) {
      throw new CheckpointKeyError(
        `The audit checkpoint key ${path} does not exist; create it with \`writ dev\` once or set audit.checkpoint_key_file.`,
      );
    }
    const { privateKey } = generateKeyPairSync("ed25519");
    const privateJwk = privateKey.export({ format: "jwk" });
    const stored: StoredCheckpointKey = {
      kid: checkpointKeyId(privateJwk.x as string),
      alg: "EdDSA",
      created_at: (options.now ?? new Date()).toISOString(),
      private_jwk: privateJwk,
    };
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const temp = `${path}.tmp`;
    await writeFile(temp, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, path);
    return { signer: toSigner(stored, path), generated: true };
  }
  return { signer: toSigner(parseStored(text, path), path), generated: false };
}

/**
 * Public checkpoint keys from text an auditor obtained out of band: a public JWK,
 * a JWKS (`{ "keys": [...] }`), the answer of `GET /v1/audit/checkpoint-key`, or
 * writ's key file (only its public part is used). Key ids are recomputed from the
 * keys, never taken from the text.
 */
export function parseCheckpointPublicKeys(text: string, source: string): CheckpointKeys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CheckpointKeyError(`${source} is not valid JSON`);
  }
  const candidates: unknown[] = [];
  if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
    const o = parsed as Record<string, unknown>;
    if (Array.isArray(o.keys)) candidates.push(...o.keys);
    else if (typeof o.jwk === "object") candidates.push(o.jwk);
    else if (typeof o.private_jwk === "object") candidates.push(o.private_jwk);
    else candidates.push(o);
  }
  const keys = new Map<string, KeyObject>();
  for (const candidate of candidates) {
    const jwk = candidate as Record<string, unknown> | null;
    if (
      typeof jwk !== "object" ||
      jwk === null ||
      jwk.kty !== "OKP" ||
      jwk.crv !== "Ed25519" ||
      typeof jwk.x !== "string"
    ) {
      continue;
    }
    keys.set(checkpointKeyId(jwk.x), publicKeyFromX(jwk.x, source));
  }
  if (keys.size === 0) {
    throw new CheckpointKeyError(`${source} holds no Ed25519 public key`);
  }
  return keys;
}
