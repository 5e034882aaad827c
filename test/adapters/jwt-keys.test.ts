import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadKeyRing, loadOrCreateKeyRing, rotateKeyRing } from "../../src/adapters/jwt-keys.js";

describe("the JWT key ring", () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-keys-"));
    file = join(dir, "keys", "jwt.json");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a key once, then loads the same key on every restart", async () => {
    const first = await loadOrCreateKeyRing(file, "EdDSA");
    expect(first.generated).toBe(true);
    const again = await loadOrCreateKeyRing(file, "EdDSA");
    expect(again.generated).toBe(false);
    expect(again.active.kid).toBe(first.active.kid);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("publishes public keys only", async () => {
    const ring = await loadOrCreateKeyRing(file, "EdDSA");
    const [jwk] = ring.jwks().keys;
    expect(jwk).toMatchObject({
      kty: "OKP",
      crv: "Ed25519",
      alg: "EdDSA",
      use: "sig",
      kid: ring.active.kid,
    });
    expect(jwk).not.toHaveProperty("d");
  });

  it("supports ES256", async () => {
    const ring = await loadOrCreateKeyRing(file, "ES256");
    expect(ring.jwks().keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
  });

  it("rotates: the new key signs, the old one stays published until it ages out", async () => {
    const first = await loadOrCreateKeyRing(file, "EdDSA");
    const t0 = new Date("2026-01-01T00:00:00Z");
    const second = await rotateKeyRing(file, "EdDSA", 3600, t0);
    expect(second.active.kid).not.toBe(first.active.kid);
    expect(second.byKid(first.active.kid)).toBeDefined();
    expect(second.jwks().keys).toHaveLength(2);
    const third = await rotateKeyRing(file, "EdDSA", 3600, new Date(t0.getTime() + 7200_000));
    expect(third.byKid(first.active.kid)).toBeUndefined();
    expect(third.byKid(second.active.kid)).toBeDefined();
    expect((await loadKeyRing(file)).active.kid).toBe(third.active.kid);
  });

  it("refuses a file that is not a key ring", async () => {
    await loadOrCreateKeyRing(file, "EdDSA");
    await writeFile(file, JSON.stringify({ keys: [] }));
    await expect(loadKeyRing(file)).rejects.toThrow(/not a writ JWT key file/);
    expect(await readFile(file, "utf8")).toContain("keys");
  });

  it("refuses a file that is not JSON without quoting the private key beside the error", async () => {
    await loadOrCreateKeyRing(file, "EdDSA");
    const d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    // A hand edit that lost the quotes around the private key.
    await writeFile(
      file,
      `{"active": "k1", "keys": [{"kid": "k1", "alg": "EdDSA", "private_jwk": {"kty": "OKP", "crv": "Ed25519", "d": ${d}, "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}`,
    );
    const error = await loadKeyRing(file).catch((thrown: unknown) => thrown);
    const { message } = error as Error;
    for (let i = 0; i + 8 <= d.length; i++) expect(message).not.toContain(d.slice(i, i + 8));
    expect(message).toBe(`${file} is not valid JSON`);
  });

  it("publishes a key derived from the private key, never other members of the stored one", async () => {
    const ring = await loadOrCreateKeyRing(file, "EdDSA");
    const stored = JSON.parse(await readFile(file, "utf8"));
    // A hand edit (or another tool) left a member beside the key.
    stored.keys[0].private_jwk.note = "backup of d: do not share";
    await writeFile(file, JSON.stringify(stored));
    const [jwk] = (await loadKeyRing(file)).jwks().keys;
    expect(jwk).toEqual({
      kty: "OKP",
      crv: "Ed25519",
      x: ring.active.publicJwk.x,
      kid: ring.active.kid,
      alg: "EdDSA",
      use: "sig",
    });
  });

  it("refuses a key of another type than its algorithm rather than publish its parts", async () => {
    await loadOrCreateKeyRing(file, "EdDSA");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const rsa = privateKey.export({ format: "jwk" });
    for (const alg of ["EdDSA", "RS256"]) {
      await writeFile(
        file,
        JSON.stringify({
          active: "k1",
          keys: [{ kid: "k1", alg, created_at: "2026-11-22T00:00:00Z", private_jwk: rsa }],
        }),
      );
      const error = (await loadKeyRing(file).catch((thrown: unknown) => thrown)) as Error;
      expect(error.message).toMatch(/key "k1" is not an .* key/);
      expect(error.message).not.toContain(String(rsa.p).slice(0, 16));
    }
  });

  it("refuses an ES256 key on another curve, and a private key that is no key at all", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const keys = [
      { kid: "p384", alg: "ES256", private_jwk: privateKey.export({ format: "jwk" }) },
      { kid: "junk", alg: "EdDSA", private_jwk: { kty: "OKP", crv: "Ed25519", d: "AAAA" } },
    ];
    await mkdir(join(dir, "keys"));
    for (const key of keys) {
      await writeFile(file, JSON.stringify({ active: key.kid, keys: [key] }));
      await expect(loadKeyRing(file)).rejects.toThrow(new RegExp(`key "${key.kid}" is not`));
    }
  });
});
