import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessRequest, IssuedCredential } from "../../src/domain/request.js";
import { expectError, expectJson, issuedToken, keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/**
 * Credentials recorded without a token digest, as a writ from before digests
 * were recorded left them (a rolling upgrade): consume checks the signature
 * instead, and nothing else.
 */
describe("consuming a token whose credential was recorded without a digest", () => {
  let t: TestWrit;
  beforeAll(async () => {
    t = await startTestWrit();
  });
  afterAll(async () => {
    await t?.close();
  });

  /** An issued token whose stored credential is rewritten as an older writ wrote it. */
  async function legacyToken(): Promise<string> {
    const { id, token } = await issuedToken(t);
    const { store } = t.writ.broker.deps;
    const stored = (await store.get(id)) as AccessRequest;
    const { digest: _, ...credential } = stored.credential as IssuedCredential;
    expect(_).toEqual(expect.any(String));
    const result = await store.commit(
      { ...stored, version: stored.version + 1, credential },
      stored.version,
      [],
    );
    expect(result.ok).toBe(true);
    return token;
  }

  const consume = (token: string) =>
    t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });

  it("accepts the genuine token once, by its signature", async () => {
    const token = await legacyToken();
    await expectJson(await consume(token), 200);
    await expectError(await consume(token), 409, "token_replayed");
  });

  it("refuses a token whose signature does not verify, and leaves the genuine one usable", async () => {
    const token = await legacyToken();
    const [h, p, s] = token.split(".") as [string, string, string];
    const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
    await expectError(await consume(flipped), 401, "token_invalid");
    await expectJson(await consume(token), 200);
  });

  it("refuses it once expired", async () => {
    const token = await legacyToken();
    t.clock.advance(300 + 6);
    const error = await expectError(await consume(token), 401, "token_invalid");
    expect(error.message).toMatch(/expired/);
  });
});
