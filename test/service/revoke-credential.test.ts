import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AccessRequest } from "../../src/domain/request.js";
import type { CredentialRevoker } from "../../src/ports/revoker.js";
import { createBroker } from "../../src/service/broker.js";
import {
  allEvents,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  readRequest,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

// Ending a credential at its source is part of the change that revoke and
// complete record: when the record cannot be written, the source is left alone.

let t: TestWrit;

beforeEach(async () => {
  t = await startTestWrit();
});

afterEach(async () => {
  await t?.close();
});

/** A revoker for JWTs that records its calls, standing in for a credential's source. */
function recordingRevoker() {
  const calls: string[] = [];
  const revoker: CredentialRevoker = {
    type: "jwt",
    source: "test-source",
    async revoke(request: AccessRequest, reason) {
      calls.push(`${request.id}:${reason}`);
      return { source: "test-source" };
    },
  };
  return { revoker, calls };
}

/** An s3 read collected by report-agent: an issued credential. */
async function issued(): Promise<string> {
  const key = keyOf(t, "report-agent");
  const created = await t.call("POST", "/v1/requests", { key, body: S3_READ });
  const { id } = (await created.json()) as { id: string };
  expect((await t.call("POST", `/v1/requests/${id}/credential`, { key })).status).toBe(200);
  return id;
}

describe("revoke and complete while the audit log cannot record", () => {
  it("a reviewer's revoke leaves the source alone and the credential issued", async () => {
    const { revoker, calls } = recordingRevoker();
    const broker = createBroker({ ...t.writ.broker.deps, revokers: { jwt: revoker } });
    const carol = t.writ.broker.deps.identities.reviewer("carol");
    if (carol === undefined) throw new Error("no demo reviewer");
    const id = await issued();
    const before = await readRequest(t, id);

    await t.writ.auditLog.close();
    await expect(broker.revoke(carol, id, "suspicious")).rejects.toMatchObject({
      code: "audit_unavailable",
    });
    // Nothing ended where no record says who ended it, or why.
    expect(calls).toEqual([]);
    expect(await readRequest(t, id)).toMatchObject({
      status: "issued",
      credential: before.credential,
    });
  });

  it("an agent's completion leaves the source alone and the credential issued", async () => {
    const { revoker, calls } = recordingRevoker();
    const broker = createBroker({ ...t.writ.broker.deps, revokers: { jwt: revoker } });
    const agent = t.writ.broker.deps.identities.agent("report-agent");
    if (agent === undefined) throw new Error("no demo agent");
    const id = await issued();

    await t.writ.auditLog.close();
    await expect(broker.complete(agent, id)).rejects.toMatchObject({ code: "audit_unavailable" });
    expect(calls).toEqual([]);
    expect((await readRequest(t, id)).status).toBe("issued");
  });
});

describe("the reason for a revoke", () => {
  it("is refused blank or invisible from any channel, before the source is touched", async () => {
    const { revoker, calls } = recordingRevoker();
    const broker = createBroker({ ...t.writ.broker.deps, revokers: { jwt: revoker } });
    const carol = t.writ.broker.deps.identities.reviewer("carol");
    if (carol === undefined) throw new Error("no demo reviewer");
    const id = await issued();
    for (const reason of ["", "  ", "\u200B", "\u00AD\u2060"]) {
      await expect(broker.revoke(carol, id, reason)).rejects.toMatchObject({
        code: "validation_failed",
      });
    }
    expect(calls).toEqual([]);
    expect((await readRequest(t, id)).status).toBe("issued");
  });
});

describe("revoking an approved request before it is collected", () => {
  it("stops it: nothing can be minted, and the record says what was revoked", async () => {
    const agentKey = keyOf(t, "report-agent");
    const { id } = await createRequest(t, S3_READ);
    const revoked = await t.call("POST", `/v1/requests/${id}/revoke`, {
      key: keyOf(t, "dana"),
      body: { reason: "agent compromised" },
    });
    const view = await expectJson<Record<string, unknown>>(revoked, 200);
    expect(view.status).toBe("revoked");
    expect(view.credential ?? null).toBeNull();
    await expectError(
      await t.call("POST", `/v1/requests/${id}/credential`, { key: agentKey }),
      410,
      "request_revoked",
    );
    const events = await allEvents(t, { request_id: id });
    expect(events.map((e) => e.type)).not.toContain("credential.issued");
    expect(events.at(-1)).toMatchObject({
      type: "credential.revoked",
      actor: { kind: "auditor", id: "dana" },
      data: {
        cause: "revoked",
        reason: "agent compromised",
        credential_id: null,
        previous_status: "approved",
      },
    });
    // Revoked once: a second revoke, or the agent's cancel, changes nothing.
    await expectError(
      await t.call("POST", `/v1/requests/${id}/revoke`, {
        key: keyOf(t, "dana"),
        body: { reason: "again" },
      }),
      409,
      "not_revocable",
    );
  });

  it("ends at its source a credential collected while the revoke was under way", async () => {
    const { revoker, calls } = recordingRevoker();
    // The store as the revoke sees it: its first read is answered only after
    // the agent has collected, as when the collect lands in between.
    const store = t.writ.broker.deps.store;
    let collected: Promise<unknown> | undefined;
    let reads = 0;
    const racingStore = Object.create(store, {
      get: {
        value: async (id: string) => {
          const read = await store.get(id);
          if (reads++ === 0) {
            collected = t.call("POST", `/v1/requests/${id}/credential`, {
              key: keyOf(t, "report-agent"),
            });
            expect((await (collected as Promise<Response>)).status).toBe(200);
          }
          return read;
        },
      },
    });
    const broker = createBroker({
      ...t.writ.broker.deps,
      store: racingStore,
      revokers: { jwt: revoker },
    });
    const carol = t.writ.broker.deps.identities.reviewer("carol");
    if (carol === undefined) throw new Error("no demo reviewer");
    const { id } = await createRequest(t, S3_READ);

    const { request, events } = await broker.revoke(carol, id, "suspicious");
    expect(collected).toBeDefined();
    // The credential the agent got was ended where it lives, and the record says so.
    expect(calls).toEqual([`${id}:revoked`]);
    expect(request.status).toBe("revoked");
    expect(events[0]?.data).toMatchObject({
      previous_status: "issued",
      at_source: "test-source",
    });
    expect(events[0]?.data.credential_id).toEqual(request.credential?.id);
  });
});
