import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DevIdentities } from "../../src/config/dev-identities.js";
import { CUSTOMERS_EXPORT, type RequestBody } from "../support/api.js";
import {
  blockAction,
  type FakeSlack,
  interactionBody,
  slackSignature,
  startFakeSlack,
} from "../support/fake-slack.js";

const ROOT = resolve(import.meta.dirname, "../..");
const START_TIMEOUT_MS = 20_000;
const SECRET = "5c0ffee5c0ffee5c0ffee5c0ffee5c0f";
const TOKEN = "xoxb-3333-4444-writdevtoken";
const CHANNEL = "C0DEVAPPROVALS";
// Real-looking ids in place of the demo placeholders, in order: alice, bob, carol.
const ALICE = "U0DEVALICE";
const BOB = "U0DEVBOB";
const CAROL = "U0DEVCAROL";

let slack: FakeSlack;
let dataDir: string;
let dev: ChildProcessWithoutNullStreams;
let exited: Promise<number | null>;
let url = "";
let ids: DevIdentities;

/** `writ dev` as a user starts it, with Slack configured only through the environment. */
async function startDev(): Promise<void> {
  dev = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "src/cli/bin.ts"),
      "dev",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--quiet",
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        NO_COLOR: "1",
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_BOT_TOKEN: TOKEN,
        WRIT_SLACK_API_URL: slack.apiUrl,
        WRIT_SLACK_CHANNEL: CHANNEL,
        WRIT_DEV_SLACK_USERS: [ALICE, BOB, CAROL].join(","),
      },
    },
  );
  exited = new Promise((done) => dev.on("exit", (code) => done(code)));
  let out = "";
  let err = "";
  dev.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`writ dev did not start:\n${out}\n${err}`)),
      START_TIMEOUT_MS,
    );
    dev.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const found = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (found !== undefined) {
        clearTimeout(timer);
        ready(found);
      }
    });
    void exited.then((code) => fail(new Error(`writ dev exited with ${code}:\n${out}\n${err}`)));
  });
}

beforeAll(async () => {
  slack = await startFakeSlack(TOKEN);
  dataDir = await mkdtemp(join(tmpdir(), "writ-slack-dev-"));
  await startDev();
  ids = JSON.parse(await readFile(join(dataDir, "dev-identities.json"), "utf8"));
});

afterAll(async () => {
  if (dev !== undefined && dev.exitCode === null) {
    dev.kill("SIGTERM");
    await exited;
  }
  await slack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function api(method: string, path: string, key: string, body?: object): Promise<Response> {
  return fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** A button click, signed as Slack signs it, now (writ dev runs on the real clock). */
function click(user: string, requestId: string): Promise<Response> {
  const body = interactionBody(
    blockAction({ user, actionId: "writ_approve", requestId, channel: CHANNEL }),
  );
  return fetch(`${url}/slack/events`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...slackSignature(SECRET, body, Math.floor(Date.now() / 1000)),
    },
    body,
  });
}

describe("writ dev with Slack from the environment", () => {
  it("posts the approval to WRIT_SLACK_CHANNEL and approves with clicks from the linked demo reviewers", async () => {
    const agent = ids.agents[0];
    if (agent === undefined) throw new Error("no demo agent");
    const created = await api("POST", "/v1/requests", agent.key, CUSTOMERS_EXPORT);
    expect(created.status).toBe(201);
    const { id, status } = (await created.json()) as RequestBody;
    expect(status).toBe("pending");

    const posted = await slack.waitFor(
      "chat.postMessage",
      (c) => JSON.stringify(c.args).includes(id),
      START_TIMEOUT_MS,
    );
    expect(posted.args.channel).toBe(CHANNEL);
    // The owner is shown with the Slack id WRIT_DEV_SLACK_USERS gave alice.
    expect(JSON.stringify(posted.args.blocks)).toContain(`<@${ALICE}>`);

    expect((await click(BOB, id)).status).toBe(200);
    await slack.waitFor(
      "chat.postEphemeral",
      (c) => c.args.user === BOB && JSON.stringify(c.args).includes("more approvals are needed"),
    );
    expect((await click(CAROL, id)).status).toBe(200);
    await slack.waitFor(
      "chat.postEphemeral",
      (c) => c.args.user === CAROL && JSON.stringify(c.args).includes("it is now approved"),
    );
    const read = (await (await api("GET", `/v1/requests/${id}`, agent.key)).json()) as RequestBody;
    expect(read.status).toBe("approved");
    expect(read.reviews.map((r) => r.reviewer)).toEqual(["bob", "carol"]);
    await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("Approved by bob, carol"),
    );
  });
});
