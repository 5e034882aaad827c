import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWritClient, isWritApiError } from "../../src/sdk/client.js";
import type { RunningServer } from "../../src/server.js";
import { tempPolicies } from "../policy/temp-policies.js";
import { collectToken, createRequest, keyOf } from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { startWritCli } from "../support/cli.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

// The built CLI (`npm test` builds first) and the SDK against a served writ
// whose policy allows break-glass requests on condition of a review afterwards.

let t: TestWrit;
let server: RunningServer;
let removePolicies: () => Promise<void>;

beforeAll(async () => {
  const policies = await tempPolicies({ "break-glass.cedar": BREAK_GLASS_POLICY });
  removePolicies = policies.remove;
  t = await startTestWrit({ policies: { dir: policies.dir, watch: false } });
  server = await serveTestWrit(t);
});

afterAll(async () => {
  await server.stop();
  await removePolicies();
});

function writ(args: readonly string[], who: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  env.WRIT_URL = server.url;
  env.WRIT_KEY = keyOf(t, who);
  return startWritCli(["review-after", ...args], env, 15_000).done;
}

async function issued(): Promise<string> {
  const { id } = await createRequest(t, BREAK_GLASS);
  await collectToken(t, id);
  return id;
}

describe("writ review-after", () => {
  it("refuses a bad command line before calling the server", async () => {
    const id = await issued();
    for (const args of [[id], [id, "--ok", "--concern"], [id, "--concern"], ["--ok"]]) {
      const result = await writ(args, "carol");
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(/^writ review-after: /);
    }
  });

  it("records a concern once, and refuses the owner and a second review", async () => {
    const id = await issued();
    const own = await writ([id, "--ok"], "alice");
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/^writ review-after: self_approval_forbidden: /);

    const concern = await writ([id, "--concern", "--note", "no incident on record"], "carol");
    expect(concern.stderr).toBe("");
    expect(concern.code).toBe(0);
    expect(concern.stdout).toBe(
      `reviewed ${id} after the fact: concern recorded (the request is issued)\n`,
    );

    const again = await writ([id, "--ok", "--json"], "carol");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^writ review-after: already_reviewed_after: /);
  });
});

describe("SDK reviewAfter", () => {
  it("lists what awaits, records the review, and reports refusals by code", async () => {
    const id = await issued();
    const carol = createWritClient({ url: server.url, key: keyOf(t, "carol") });
    const waiting = await carol.list({ awaiting: "review_after" });
    expect(waiting.items.map((r) => r.id)).toContain(id);
    expect(waiting.items.find((r) => r.id === id)?.review_after).toEqual({ groups: ["security"] });

    const bob = createWritClient({ url: server.url, key: keyOf(t, "bob") });
    const refused = await bob.reviewAfter(id, "ok").catch((error: unknown) => error);
    expect(isWritApiError(refused) && refused.code).toBe("not_an_approver");

    const reviewed = await carol.reviewAfter(id, "ok");
    expect(reviewed.review_after?.review).toMatchObject({ reviewer: "carol", verdict: "ok" });
    expect((await carol.list({ awaiting: "review_after" })).items.map((r) => r.id)).not.toContain(
      id,
    );
    const twice = await carol.reviewAfter(id, "concern", "late").catch((error: unknown) => error);
    expect(isWritApiError(twice) && twice.status).toBe(409);
  });
});
