import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessRequest } from "../../src/domain/request.js";
import type { CredentialRevoker } from "../../src/ports/revoker.js";
import { createWritClient, type WritClient } from "../../src/sdk/client.js";
import { WritApiError } from "../../src/sdk/errors.js";
import type { RunningServer } from "../../src/server.js";
import { createBroker } from "../../src/service/broker.js";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  expectError,
  keyOf,
  S3_READ,
  UNKNOWN_REQUEST_ID,
} from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit;
let server: RunningServer;

function clientFor(id: string): WritClient {
  return createWritClient({ url: server.url, key: keyOf(t, id) });
}

async function apiError(promise: Promise<unknown>, code: string, status: number) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WritApiError);
  expect(error).toMatchObject({ code, status });
  return error as WritApiError;
}

async function completionEvents(id: string) {
  return (await allEvents(t, { request_id: id })).filter((e) => e.type === "credential.completed");
}

beforeAll(async () => {
  const extra = extraIdentities({ agents: [{ id: "other-agent", owner: "dana" }] });
  t = await startTestWrit(extra.overrides);
  Object.assign(t.keys, extra.keys);
  server = await serveTestWrit(t);
});

afterAll(async () => {
  // server.stop() closes the writ too.
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
});

describe("POST /v1/requests/{id}/complete", () => {
  it("ends an issued, unused credential: it no longer consumes; repeating is success", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(S3_READ);
    const credential = await agent.collectCredential(created.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");

    const completed = await agent.complete(created.id);
    expect(completed.status).toBe("completed");
    expect(completed.completed_at).toBe(new Date(t.clock.now()).toISOString());
    await apiError(clientFor("billing-api").consume(credential.token), "token_invalid", 401);

    const events = await completionEvents(created.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: { kind: "agent", id: "report-agent" },
      data: { previous_status: "issued", ended: true, credential_type: "jwt" },
    });
    expect(JSON.stringify(events)).not.toContain(credential.token);

    t.clock.advance(5);
    const again = await agent.complete(created.id);
    expect(again).toMatchObject({ status: "completed", completed_at: completed.completed_at });
    expect(await completionEvents(created.id)).toHaveLength(1);
  });

  it("records completion of a used credential once; the request stays used", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(S3_READ);
    const credential = await agent.collectCredential(created.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    await clientFor("billing-api").consume(credential.token);

    const completed = await agent.complete(created.id);
    expect(completed.status).toBe("used");
    expect(completed.completed_at).toBeDefined();
    expect((await agent.complete(created.id)).status).toBe("used");
    const events = await completionEvents(created.id);
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toMatchObject({ previous_status: "used", ended: false });
  });

  it("refuses requests with nothing collected, or that ended otherwise", async () => {
    const agent = clientFor("report-agent");
    const pending = await agent.request(CUSTOMERS_EXPORT);
    const error = await apiError(agent.complete(pending.id), "not_completable", 409);
    expect(error.details).toMatchObject({ status: "pending" });
    expect(error.message).toMatch(/cancel/);

    const approved = await agent.request(S3_READ);
    await apiError(agent.complete(approved.id), "not_completable", 409);

    const revoked = await agent.request(S3_READ);
    await agent.collectCredential(revoked.id);
    await clientFor("carol").get(revoked.id);
    const revokeRes = await t.call("POST", `/v1/requests/${revoked.id}/revoke`, {
      key: keyOf(t, "dana"),
      body: { reason: "incident" },
    });
    expect(revokeRes.status).toBe(200);
    await apiError(agent.complete(revoked.id), "not_completable", 409);

    const expired = await agent.request(S3_READ);
    await agent.collectCredential(expired.id);
    t.clock.advance(3600);
    const late = await apiError(agent.complete(expired.id), "not_completable", 409);
    expect(late.details).toMatchObject({ status: "expired" });
    // Nothing was recorded for any refusal.
    for (const id of [pending.id, approved.id, revoked.id, expired.id]) {
      expect(await completionEvents(id)).toEqual([]);
    }
  });

  it("only the requesting agent completes; everyone else is refused", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(S3_READ);
    await agent.collectCredential(created.id);
    await apiError(clientFor("other-agent").complete(created.id), "not_found", 404);
    await apiError(clientFor("bob").complete(created.id), "wrong_principal_kind", 403);
    await apiError(clientFor("dana").complete(created.id), "wrong_principal_kind", 403);
    await apiError(clientFor("billing-api").complete(created.id), "wrong_principal_kind", 403);
    await apiError(agent.complete(UNKNOWN_REQUEST_ID), "not_found", 404);
    const stranger = createWritClient({ url: server.url, key: "writ_agent_not-a-real-key" });
    await apiError(stranger.complete(created.id), "unauthenticated", 401);
    expect((await agent.get(created.id)).status).toBe("issued");
  });

  it("hostile input is a clear 4xx", async () => {
    const key = keyOf(t, "report-agent");
    const created = await clientFor("report-agent").request(S3_READ);
    const path = `/v1/requests/${created.id}/complete`;
    await expectError(await t.call("POST", path, {}), 401, "unauthenticated");
    await expectError(
      await t.call("POST", path, { headers: { authorization: `Basic ${key}` } }),
      401,
      "unauthenticated",
    );
    await expectError(
      await t.call("POST", "/v1/requests/req_../complete", { key }),
      400,
      "validation_failed",
    );
    await expectError(
      await t.call("POST", `/v1/requests/${"req_".padEnd(5000, "A")}/complete`, { key }),
      400,
      "validation_failed",
    );
    await expectError(
      await t.call("POST", path, { key, body: { status: "completed" } }),
      400,
      "validation_failed",
    );
    await expectError(await t.call("POST", path, { key, body: "{not json" }), 400, "invalid_json");
    await expectError(
      await t.call("POST", path, { key, body: { pad: "x".repeat(70_000) } }),
      413,
      "payload_too_large",
    );
    await expectError(
      await t.call("POST", path, { key, body: "x=1", headers: { "content-type": "text/plain" } }),
      415,
      "unsupported_media_type",
    );
    expect((await clientFor("report-agent").get(created.id)).status).toBe("approved");
  });
});

describe("the revoker seam", () => {
  function recordingRevoker(fail: () => boolean) {
    const calls: { id: string; status: string; reason: string }[] = [];
    const revoker: CredentialRevoker = {
      type: "jwt",
      source: "test-source",
      async revoke(request: AccessRequest, reason) {
        calls.push({ id: request.id, status: request.status, reason });
        if (fail()) throw new Error("iam unreachable");
        return { source: "test-source", details: { handle: `ended-${request.id}` } };
      },
    };
    return { revoker, calls };
  }

  it("ends the credential at its source before recording the end; a failure changes nothing", async () => {
    let failing = true;
    const { revoker, calls } = recordingRevoker(() => failing);
    const broker = createBroker({ ...t.writ.broker.deps, revokers: { jwt: revoker } });
    const agent = t.writ.broker.deps.identities.agent("report-agent");
    if (agent === undefined) throw new Error("no demo agent");
    const created = await clientFor("report-agent").request(S3_READ);
    await clientFor("report-agent").collectCredential(created.id);

    await expect(broker.complete(agent, created.id)).rejects.toMatchObject({
      code: "revocation_unavailable",
    });
    expect(calls).toEqual([{ id: created.id, status: "issued", reason: "completed" }]);
    expect((await clientFor("report-agent").get(created.id)).status).toBe("issued");
    expect(await completionEvents(created.id)).toEqual([]);

    failing = false;
    expect((await broker.complete(agent, created.id)).status).toBe("completed");
    expect(calls).toHaveLength(2);
    // The end at the source is recorded in the same commit as the completion.
    const ended = (await allEvents(t, { request_id: created.id })).slice(-2);
    expect(ended.map((e) => e.type)).toEqual(["credential.completed", "credential.revoked"]);
    expect(ended[1]).toMatchObject({
      actor: { kind: "agent", id: "report-agent" },
      data: { reason: "completed", cause: "completed", at_source: "test-source" },
    });
    expect(ended[1]?.data.handle).toBe(`ended-${created.id}`);
    // Already completed: nothing left to revoke.
    await broker.complete(agent, created.id);
    expect(calls).toHaveLength(2);
  });

  it("a reviewer's revoke goes through the same revoker", async () => {
    const { revoker, calls } = recordingRevoker(() => false);
    const broker = createBroker({ ...t.writ.broker.deps, revokers: { jwt: revoker } });
    const carol = t.writ.broker.deps.identities.reviewer("carol");
    if (carol === undefined) throw new Error("no demo reviewer");
    const created = await clientFor("report-agent").request(S3_READ);
    await clientFor("report-agent").collectCredential(created.id);
    const { request, events } = await broker.revoke(carol, created.id, "suspicious");
    expect(request.status).toBe("revoked");
    expect(calls).toEqual([{ id: created.id, status: "issued", reason: "revoked" }]);
    // One event: the reviewer's revoke, carrying the end at the source.
    expect(events.map((e) => e.type)).toEqual(["credential.revoked"]);
    expect(events[0]?.data).toMatchObject({
      reason: "suspicious",
      cause: "revoked",
      at_source: "test-source",
      handle: `ended-${created.id}`,
    });
  });
});
