import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { runCli } from "../../src/cli/main.js";
import { createWritClient } from "../../src/sdk/client.js";
import { WritApiError } from "../../src/sdk/errors.js";
import type { RunningServer } from "../../src/server.js";
import {
  allEvents,
  allRequests,
  approveAs,
  CUSTOMERS_EXPORT,
  expectError,
  expectJson,
  keyOf,
  type RequestBody,
} from "../support/api.js";
import { type CapturedLogLine, capturingLogger } from "../support/captured-log.js";
import { extraIdentities } from "../support/extra-identities.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { type LoopbackIssuer, startOidcIssuer } from "../support/oidc-issuer.js";

// The demo export needs two data-owners (alice, bob, carol). An agent naming bob
// as on_behalf_of keeps bob from reviewing, leaving the approval to the others.

let t: TestWrit;
let github: LoopbackIssuer;
let log: CapturedLogLine[];
let server: RunningServer | undefined;

function ghClaims(overrides: Record<string, unknown> = {}) {
  return {
    aud: "writ-test",
    repository: "acme/reports",
    repository_owner: "acme",
    actor: "octocat",
    ...overrides,
  };
}

beforeAll(async () => {
  let now = () => Date.now();
  github = await startOidcIssuer({ now: () => now() });
  const { overrides, keys } = extraIdentities({
    agents: [
      { id: "scoped-agent", owner: "zed", acts_for: ["carol"] },
      { id: "solo-agent", owner: "zed", acts_for: [] },
    ],
  });
  const captured = capturingLogger();
  log = captured.lines;
  t = await startTestWrit(
    {
      identities: {
        ...overrides.identities,
        oidc: [
          {
            issuer: github.issuer,
            audience: "writ-test",
            agent: {
              id: "gh:{repository}",
              owner: "platform-oncall",
              acts_for: ["{actor}", "release-oncall"],
            },
            require: { repository_owner: "acme" },
          },
        ],
      },
    },
    { logger: captured.logger },
  );
  Object.assign(t.keys, keys);
  now = () => t.clock.now();
});

afterAll(async () => {
  if (server !== undefined) await server.stop();
  else await t?.close();
  await github?.close();
});

beforeEach(() => {
  log.length = 0;
});

const ask = (key: string, onBehalfOf?: string) =>
  t.call("POST", "/v1/requests", {
    key,
    body: {
      ...CUSTOMERS_EXPORT,
      ...(onBehalfOf !== undefined ? { on_behalf_of: onBehalfOf } : {}),
    },
  });

async function expectNothingRecorded(before: { requests: number; events: number }) {
  expect((await allRequests(t)).length).toBe(before.requests);
  expect((await allEvents(t)).length).toBe(before.events);
}

async function counts() {
  return { requests: (await allRequests(t)).length, events: (await allEvents(t)).length };
}

describe("acts_for: whom a key agent may act for", () => {
  it("refuses a person not in acts_for with 403 on_behalf_of_not_allowed, recording nothing", async () => {
    const before = await counts();
    const error = await expectError(
      await ask(keyOf(t, "scoped-agent"), "bob"),
      403,
      "on_behalf_of_not_allowed",
    );
    expect(error.message).toMatch(/may not act on behalf of "bob"/);
    await expectNothingRecorded(before);
    // The attempt is logged for the security team, naming the agent and the person.
    expect(log).toContainEqual(
      expect.objectContaining({
        level: "warn",
        fields: { agent: "scoped-agent", owner: "zed", on_behalf_of: "bob" },
      }),
    );
  });

  it("accepts a person in acts_for, in any case, and a request naming nobody", async () => {
    const named = await expectJson<RequestBody>(await ask(keyOf(t, "scoped-agent"), "Carol"), 201);
    expect(named).toMatchObject({ status: "pending", on_behalf_of: "Carol" });
    const plain = await expectJson<RequestBody>(await ask(keyOf(t, "scoped-agent")), 201);
    expect(plain.status).toBe("pending");
  });

  it("an empty acts_for lets the agent act for nobody", async () => {
    const before = await counts();
    await expectError(await ask(keyOf(t, "solo-agent"), "zed"), 403, "on_behalf_of_not_allowed");
    await expectNothingRecorded(before);
    await expectJson(await ask(keyOf(t, "solo-agent")), 201);
  });

  it("without acts_for an agent may still name anyone, as before", async () => {
    const created = await expectJson<RequestBody>(await ask(keyOf(t, "report-agent"), "bob"), 201);
    expect(created).toMatchObject({ status: "pending", on_behalf_of: "bob" });
  });
});

describe("acts_for: whom a workload-identity agent may act for", () => {
  it("takes fixed ids and ids from the token's claims", async () => {
    const token = await github.sign(ghClaims());
    for (const person of ["octocat", "release-oncall"]) {
      const created = await expectJson<RequestBody>(await ask(token, person), 201);
      expect(created).toMatchObject({ agent: "gh:acme/reports", on_behalf_of: person });
    }
  });

  it("refuses anyone else, recording nothing", async () => {
    const before = await counts();
    const token = await github.sign(ghClaims());
    await expectError(await ask(token, "bob"), 403, "on_behalf_of_not_allowed");
    // Another run's actor is another token's: this one may not act for them.
    await expectError(await ask(token, "alice"), 403, "on_behalf_of_not_allowed");
    await expectNothingRecorded(before);
  });

  it("refuses a token lacking a claim acts_for is made from, as it does for the owner", async () => {
    const token = await github.sign(ghClaims({ actor: undefined }));
    await expectError(await ask(token), 401, "oidc_claims_unmapped");
  });
});

describe("acts_for: the SDK and the CLI show the refusal", () => {
  beforeAll(async () => {
    server = await serveTestWrit(t);
  });

  it("the SDK rejects with the code and status", async () => {
    const client = createWritClient({ url: server?.url ?? "", key: keyOf(t, "scoped-agent") });
    const error = await client
      .request({ ...CUSTOMERS_EXPORT, on_behalf_of: "bob" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritApiError);
    expect(error).toMatchObject({ code: "on_behalf_of_not_allowed", status: 403 });
  });

  it("writ request prints the code and exits 3, as for a refused request", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: (text: string) => out.push(text),
      stderr: (text: string) => err.push(text),
      env: { WRIT_URL: server?.url ?? "", WRIT_KEY: keyOf(t, "scoped-agent") },
      stderrIsTty: false,
    };
    const code = await runCli(
      [
        "request",
        "--action",
        CUSTOMERS_EXPORT.action,
        "--resource",
        CUSTOMERS_EXPORT.resource,
        "--audience",
        CUSTOMERS_EXPORT.audience,
        "--reason",
        CUSTOMERS_EXPORT.reason,
        "--on-behalf-of",
        "bob",
      ],
      io,
    );
    expect(code).toBe(3);
    expect(err.join("")).toMatch(
      /^writ request: on_behalf_of_not_allowed: This agent may not act on behalf of "bob"/,
    );
    expect(out.join("")).toBe("");
  });
});

describe("acts_for set after a request was made", () => {
  it("keeps the credential of a request naming someone no longer allowed from being minted", async () => {
    // One store, two configurations: before and after the security team limits the agent.
    const store = createMemoryStore();
    const key = generateKey("agent");
    const agent = (acts_for?: string[]) => ({
      identities: {
        agents: [
          {
            id: "scoped-agent",
            owner: "zed",
            key_sha256: hashKey(key),
            ...(acts_for !== undefined ? { acts_for } : {}),
          },
        ],
      },
    });
    const before = await startTestWrit(agent(), { store: { ...store, close: async () => {} } });
    const after = await startTestWrit(agent(["carol"]), { store });
    try {
      // Naming bob keeps bob out; alice and carol approve it.
      const created = await expectJson<RequestBody>(
        await before.call("POST", "/v1/requests", {
          key,
          body: { ...CUSTOMERS_EXPORT, on_behalf_of: "bob" },
        }),
        201,
      );
      await approveAs(before, "alice", created.id);
      await approveAs(before, "carol", created.id);
      const collect = (t: TestWrit) =>
        t.call("POST", `/v1/requests/${created.id}/credential`, { key });
      await expectError(await collect(after), 403, "on_behalf_of_not_allowed");
      const types = (await allEvents(after, { request_id: created.id })).map((e) => e.type);
      expect(types).not.toContain("credential.issued");
      const read = await expectJson<RequestBody>(
        await after.call("GET", `/v1/requests/${created.id}`, { key }),
        200,
      );
      expect(read.status).toBe("approved");
    } finally {
      await before.close();
      await after.close();
    }
  });
});
