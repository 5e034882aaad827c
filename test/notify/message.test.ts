import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { AccessRequest } from "../../src/domain/request.js";
import { buildReviewMessage, clip, escapeControls, LIMITS } from "../../src/notify/message.js";
import {
  approvalMessage,
  denyModal,
  escapeMrkdwn,
  ownerDecisionMessage,
  revealMessage,
} from "../../src/notify/slack/blocks.js";
import { verifySlackSignature } from "../../src/notify/slack/receiver.js";
import { teamsCard } from "../../src/notify/teams/card.js";
import { blocksProblem } from "../support/fake-slack.js";

const NOW = Date.parse("2026-01-15T09:00:00.000Z");

function request(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: "req_AAAAAAAAAAAAAAAAAAAAAA",
    version: 1,
    agentId: "report-agent",
    owner: "alice",
    status: "pending",
    action: "db:export",
    resource: "db://prod/customers",
    credentialType: "jwt",
    audience: "billing-api",
    reason: "<!channel> see <https://evil.example|Approve> & more",
    context: { customer_email: "jane@example.com", rows: 12000, nested: { a: [1, 2] } },
    decision: {
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
      ttlSeconds: 300,
      approvalTimeoutSeconds: 900,
      reasonRequired: true,
      sensitiveFields: ["customer_email", "absent_field"],
    },
    grantedTtlSeconds: 300,
    createdAt: NOW,
    updatedAt: NOW,
    expiresAt: NOW + 900_000,
    reviews: [],
    ...overrides,
  };
}

describe("the review message", () => {
  it("never carries a masked value, and shows the rest bounded", () => {
    const message = buildReviewMessage(request(), [], NOW);
    expect(message.masked).toEqual(["customer_email"]);
    expect(message.context).toEqual([
      { name: "customer_email", masked: true },
      { name: "rows", value: "12000", masked: false },
      { name: "nested", value: '{"a":[1,2]}', masked: false },
    ]);
    expect(JSON.stringify(message)).not.toContain("jane@example.com");
    expect(message.requirements).toEqual([{ groups: ["data-owners"], quorum: 2, approvals: 0 }]);
    expect(message.open).toBe(true);
  });

  it("reads a pending request past its deadline as expired and closed", () => {
    const message = buildReviewMessage(request(), [], NOW + 900_000);
    expect(message.open).toBe(false);
    expect(message.status).toBe("expired");
    expect(JSON.stringify(approvalMessage(message).blocks)).not.toContain("writ_approve");
  });

  it("shows the agent, action, resource and audience exactly, where Slack formats nothing", () => {
    const message = buildReviewMessage(
      request({ agentId: "nightly_export_bot", resource: "db://prod/*_raw_*", audience: "~api~" }),
      [],
      NOW,
    );
    const fields = JSON.stringify(approvalMessage(message).blocks);
    for (const exact of ["`nightly_export_bot`", "`db:export`", "`db://prod/*_raw_*`", "`~api~`"]) {
      expect(fields).toContain(exact);
    }
    const dm = JSON.stringify(ownerDecisionMessage(message, "approved").blocks);
    expect(dm).toContain("`db://prod/*_raw_*`");
  });

  it("stays within Slack's limits whatever the agent sends", () => {
    const context: Record<string, string> = {};
    for (let i = 0; i < 40; i++) context[`field_${i}`] = "&<>".repeat(500);
    const message = buildReviewMessage(
      request({ context, reason: "&".repeat(2000), resource: "<".repeat(1024) }),
      [],
      NOW,
    );
    expect(message.context).toHaveLength(LIMITS.contextFields);
    expect(message.contextOmitted).toBe(30);
    const { blocks } = approvalMessage(message);
    expect(blocks.length).toBeLessThanOrEqual(50);
    for (const block of blocks) {
      if (block.type === "section") {
        expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
        for (const field of block.fields ?? []) expect(field.text.length).toBeLessThanOrEqual(2000);
      }
    }
  });

  it("stays within Slack's limits in UTF-16 units when the agent sends emoji", () => {
    const smile = "\u{1F600}";
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}";
    const context: Record<string, string> = {};
    for (let i = 0; i < 12; i++) context[`${family}${i}${smile.repeat(60)}`] = smile.repeat(1000);
    const message = buildReviewMessage(
      request({
        context,
        reason: `${smile.repeat(999)}&`,
        resource: family.repeat(120),
        audience: smile.repeat(128),
        ticket: `&${smile.repeat(127)}`,
        status: "denied",
        reviews: [
          {
            reviewerId: "bob",
            verdict: "deny",
            groups: ["data-owners"],
            comment: `<${smile.repeat(999)}`,
            at: NOW,
            channel: "slack",
          },
        ],
      }),
      [],
      NOW,
      { ticketUrl: "https://jira.example.com/browse/{ticket}" },
    );
    const rendered = [
      approvalMessage(message),
      ownerDecisionMessage(message, "denied"),
      revealMessage("req_AAAAAAAAAAAAAAAAAAAAAA", context),
    ];
    for (const { text, blocks } of rendered) {
      expect(blocksProblem(JSON.parse(JSON.stringify(blocks)))).toBeUndefined();
      expect(text.length).toBeLessThanOrEqual(40_000);
      expect(`${text}${JSON.stringify(blocks)}`).not.toMatch(/\p{Cs}/u);
    }
    const modal = denyModal(message, { requestId: "req_AAAAAAAAAAAAAAAAAAAAAA" });
    expect(blocksProblem(modal.blocks)).toBeUndefined();
  });

  it("cuts the revealed values between lines, so each stays inside its code span", () => {
    const { blocks } = revealMessage("req_AAAAAAAAAAAAAAAAAAAAAA", {
      [`${"&".repeat(60)}a`]: "&".repeat(200),
      [`${"&".repeat(60)}b`]: "&".repeat(200),
      c: `*APPROVED* :white_check_mark: ${"&".repeat(150)}`,
      d: "ok",
    });
    const text = (blocks[0] as { text: { text: string } }).text.text;
    expect(text.length).toBeLessThanOrEqual(3000);
    const lines = text.split("\n").slice(1);
    expect(lines.at(-1)).toBe("_…and 2 more_");
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^• `[^`]+`: `[^`]+`$/);
  });

  it("clips to UTF-16 units between two characters, never inside one", () => {
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}"; // eight units, one character
    expect(clip("short", 5)).toBe("short");
    expect(clip("abcdef", 5)).toBe("abcd…");
    expect(clip("ab\u{1F600}cd", 3)).toBe("ab…");
    expect(clip("ab\u{1F600}cd", 4)).toBe("ab…");
    expect(clip("ab\u{1F600}cd", 5)).toBe("ab\u{1F600}…");
    expect(clip(`a${family}b`, 9)).toBe("a…");
    expect(clip(`a${family}b`, 10)).toBe(`a${family}b`);
    expect(clip("cafe\u0301s", 5)).toBe("caf…");
    expect(clip("\u{1F1EB}\u{1F1F7}\u{1F1E9}\u{1F1EA}", 6)).toBe("\u{1F1EB}\u{1F1F7}…");
  });

  it("escapes agent text for Slack and Teams so it cannot ping or disguise a link", () => {
    const message = buildReviewMessage(request(), [], NOW);
    const slack = JSON.stringify(approvalMessage(message).blocks);
    expect(slack).not.toContain("<!channel>");
    expect(slack).not.toContain("<https://evil.example|Approve>");
    expect(slack).toContain("&lt;!channel&gt; see &lt;https://evil.example|Approve&gt; &amp; more");
    expect(escapeMrkdwn("a<b>&c")).toBe("a&lt;b&gt;&amp;c");
    const teams = JSON.stringify(
      teamsCard(
        buildReviewMessage(request({ reason: "[x](https://e.example)" }), [], NOW),
        "https://w.example/requests/r",
      ),
    );
    expect(teams).not.toContain("[x](https://e.example)");
  });
});

describe("the message for each state a request ends in", () => {
  const approvals = ["bob", "carol"].map((reviewerId, i) => ({
    reviewerId,
    verdict: "approve" as const,
    groups: ["data-owners"],
    at: NOW + i * 1000,
    channel: "slack" as const,
  }));
  const credential = { type: "jwt" as const, id: "jti-1", issuedAt: NOW, expiresAt: NOW + 300_000 };
  const deniedBy = {
    reviewerId: "bob",
    verdict: "deny" as const,
    groups: ["data-owners"],
    comment: "not this quarter",
    at: NOW,
    channel: "slack" as const,
  };
  const LATER = NOW + 60_000;
  const cases: {
    name: string;
    overrides: Partial<AccessRequest>;
    at?: number;
    header: string;
    deadline?: string;
  }[] = [
    { name: "pending", overrides: {}, header: ":lock: Approval needed", deadline: "Approve by" },
    {
      name: "pending past its deadline",
      overrides: {},
      at: NOW + 900_000,
      header: ":hourglass: Expired",
    },
    {
      name: "approved, not yet collected",
      overrides: { status: "approved", reviews: approvals, expiresAt: LATER },
      header: ":white_check_mark: Approved",
      deadline: "Collect by",
    },
    {
      name: "issued",
      overrides: { status: "issued", reviews: approvals, credential, expiresAt: NOW + 300_000 },
      header: ":white_check_mark: Approved, credential issued",
      deadline: "Credential expires",
    },
    {
      name: "used",
      overrides: { status: "used", reviews: approvals, credential, expiresAt: NOW + 300_000 },
      header: ":white_check_mark: Approved, credential used",
    },
    {
      name: "completed",
      overrides: { status: "completed", reviews: approvals, credential, completedAt: LATER },
      header: ":white_check_mark: Approved, completed",
    },
    {
      name: "expired before enough approvals",
      overrides: { status: "expired", reviews: approvals.slice(0, 1) },
      header: ":hourglass: Expired",
    },
    {
      name: "expired uncollected",
      overrides: { status: "expired", reviews: approvals, expiresAt: LATER },
      header: ":hourglass: Expired, credential not collected",
    },
    {
      name: "credential expired unused",
      overrides: { status: "expired", reviews: approvals, credential, expiresAt: NOW + 300_000 },
      header: ":hourglass: Credential expired unused",
    },
    {
      name: "revoked after it was issued",
      overrides: { status: "revoked", reviews: approvals, credential, expiresAt: NOW + 300_000 },
      header: ":no_entry: Credential revoked",
    },
    {
      name: "revoked before it was collected",
      overrides: { status: "revoked", reviews: approvals, expiresAt: LATER },
      header: ":no_entry: Revoked before collection",
    },
    {
      name: "denied by a reviewer",
      overrides: { status: "denied", reviews: [deniedBy] },
      header: ":no_entry: Denied",
    },
    {
      name: "denied by policy at collection",
      overrides: { status: "denied", reviews: approvals, expiresAt: LATER },
      header: ":no_entry: Denied by policy",
    },
    {
      name: "cancelled",
      overrides: { status: "cancelled" },
      header: ":heavy_multiplication_x: Cancelled",
    },
  ];

  it.each(cases)(
    "says what happened when $name, with only a deadline that still applies",
    ({ overrides, at, header, deadline }) => {
      const message = buildReviewMessage(request(overrides), [], at ?? NOW);
      const { text, blocks } = approvalMessage(message);
      const first = blocks[0] as { text: { text: string } };
      expect(first.text.text).toBe(`${header}: db:export`);
      expect(text.startsWith(header.replace(/^:[a-z_]+: /, ""))).toBe(true);
      const rendered = JSON.stringify(blocks);
      expect(rendered).not.toContain("Stage ends");
      const labels = ["Approve by", "Collect by", "Credential expires"];
      for (const label of labels) {
        if (label === deadline) expect(rendered).toContain(`*${label}*`);
        else expect(rendered).not.toContain(`*${label}*`);
      }
      const card = JSON.stringify(teamsCard(message, "https://w.example/requests/r"));
      expect(card).not.toContain("Stage ends");
      if (deadline !== undefined) expect(card).toContain(deadline);
    },
  );

  it("says on the timeline whether a revoke ended a credential or only the approval", () => {
    const revoked = (previous: string, credentialId: string | null) => ({
      id: `e-${previous}`,
      type: "credential.revoked" as const,
      time: LATER,
      actor: { kind: "reviewer" as const, id: "dana" },
      data: {
        cause: "revoked",
        previous_status: previous,
        credential_id: credentialId,
        reason: "x",
      },
    });
    const before = buildReviewMessage(
      request({ status: "revoked", reviews: approvals }),
      [revoked("approved", null)],
      LATER,
    );
    expect(before.timeline.map((t) => t.text)).toEqual([
      "Revoked by dana before the credential was collected",
    ]);
    const after = buildReviewMessage(
      request({ status: "revoked", reviews: approvals, credential }),
      [revoked("issued", "jti-1")],
      LATER,
    );
    expect(after.timeline.map((t) => t.text)).toEqual(["Credential revoked by dana"]);
  });
});

describe("agent text in the review message", () => {
  it("shows controls and bidirectional controls as visible escapes, at any depth", () => {
    const message = buildReviewMessage(
      request({
        context: {
          customer_email: "jane@example.com\n*Approvals* 2/2",
          note: "a\nb\u202Ec",
          nested: { x: ["\u2066y\u2069", 1] },
        },
      }),
      [],
      NOW,
    );
    // Masked fields stay as they were: a name, no value.
    expect(message.context).toEqual([
      { name: "customer_email", masked: true },
      { name: "note", value: "a\\nb\\u202Ec", masked: false },
      { name: "nested", value: '{"x":["\\u2066y\\u2069",1]}', masked: false },
    ]);
    expect(message.masked).toEqual(["customer_email"]);
    expect(escapeControls("\t\r\n\u0000\u007f\u0085\u061c\u200e\u2028\u2029\ud800 ok")).toBe(
      "\\t\\r\\n\\u0000\\u007F\\u0085\\u061C\\u200E\\u2028\\u2029\\uD800 ok",
    );
    expect(escapeControls("naïve – ok ✓")).toBe("naïve – ok ✓");
  });

  it("escapes the top-level text of Slack messages, which Slack reads as mrkdwn", () => {
    const message = buildReviewMessage(
      request({ resource: "db://prod/<!channel> <https://evil.example|Approve>" }),
      [],
      NOW,
    );
    expect(approvalMessage(message).text).toBe(
      "Approval needed: report-agent asks for db:export on db://prod/&lt;!channel&gt; &lt;https://evil.example|Approve&gt;",
    );
    expect(ownerDecisionMessage(message, "approved").text).not.toMatch(/[<>]/);
  });

  it("keeps context values inert in the Teams card: one line, no list, link or emphasis", () => {
    const card = teamsCard(
      buildReviewMessage(
        request({
          context: {
            rows: "- 12000\n\n**Approvals** 2/2 [Approve](https://evil.example)\u202E",
            step: "1. first",
          },
        }),
        [],
        NOW,
      ),
      "https://w.example/requests/r",
    ) as { attachments: { content: { body: { facts?: { title: string; value: string }[] }[] } }[] };
    const facts = card.attachments[0]?.content.body.flatMap((b) => b.facts ?? []) ?? [];
    const rows = facts.find((f) => f.title === "rows")?.value ?? "";
    expect(rows).toBe(
      "\\- 12000\\\\n\\\\n\\*\\*Approvals\\*\\* 2/2 \\[Approve\\]\\(https://evil.example\\)\\\\u202E",
    );
    expect(facts.find((f) => f.title === "step")?.value).toBe("1\\. first");
  });
});

describe("Slack signatures", () => {
  const secret = "8f742231b10e8888abcd99e7c5a7e58d";
  const sign = (ts: string, body: string) =>
    `v0=${createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex")}`;
  const check = (timestamp: string | undefined, signature: string | undefined, rawBody = "a=b") =>
    verifySlackSignature({ signingSecret: secret, timestamp, signature, rawBody, nowMs: NOW });
  const ts = String(NOW / 1000);

  it("accepts Slack's v0 signature within five minutes, and nothing else", () => {
    expect(check(ts, sign(ts, "a=b"))).toBeUndefined();
    expect(check(String(NOW / 1000 - 300), sign(String(NOW / 1000 - 300), "a=b"))).toBeUndefined();
    expect(check(String(NOW / 1000 - 301), sign(String(NOW / 1000 - 301), "a=b"))).toBe(
      "stale_timestamp",
    );
    expect(check(undefined, sign(ts, "a=b"))).toBe("missing_headers");
    expect(check(ts, undefined)).toBe("missing_headers");
    expect(check(`${ts}.5`, sign(`${ts}.5`, "a=b"))).toBe("stale_timestamp");
    expect(check("-1", sign("-1", "a=b"))).toBe("stale_timestamp");
    expect(check(ts, sign(ts, "a=c"))).toBe("bad_signature");
    expect(check(ts, sign(ts, "a=b").toUpperCase())).toBe("bad_signature");
    expect(check(ts, `${sign(ts, "a=b")}00`)).toBe("bad_signature");
    expect(check(ts, "v0=")).toBe("bad_signature");
    expect(check(ts, `v1=${sign(ts, "a=b").slice(3)}`)).toBe("bad_signature");
  });
});
