import { expect } from "vitest";
import type { TestWrit } from "./harness.js";

/** The demo resource an agent may read at once (policy `demo-reports-read`). */
export const S3_READ = {
  action: "s3:GetObject",
  resource: "arn:aws:s3:::demo-reports/q3.csv",
  audience: "billing-api",
} as const;

/** The demo export that needs two data-owners and a reason (policy `customers-export`). */
export const CUSTOMERS_EXPORT = {
  action: "db:export",
  resource: "db://prod/customers",
  audience: "billing-api",
  reason: "quarterly churn analysis",
} as const;

/** A well-formed request id that no store holds. */
export const UNKNOWN_REQUEST_ID = "req_AAAAAAAAAAAAAAAAAAAAAA";

/** The API form of a request, as far as these tests read it. */
export interface RequestBody {
  id: string;
  status: string;
  agent: string;
  owner: string;
  on_behalf_of?: string;
  action: string;
  resource: string;
  pending_approvals: number;
  reviews: { reviewer: string; verdict: string }[];
  decision: { effect: string; policies: string[]; requirements: unknown[] };
  credential?: { type: string; id: string; issued_at: string; expires_at: string };
  expires_at: string;
}

export interface EventBody {
  id: string;
  type: string;
  request_id: string;
  actor: { kind: string; id: string };
  time: string;
  data: Record<string, unknown>;
}

/** A page of `GET /v1/events`: follow `next` as `after`, even after a short page. */
export interface EventPage {
  items: EventBody[];
  next?: string;
  last_id?: string;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** The plain key of a demo or added principal; throws if the test names an unknown one. */
export function keyOf(t: TestWrit, id: string): string {
  const key = t.keys[id];
  if (key === undefined) throw new TypeError(`no key for "${id}"`);
  return key;
}

/** Asserts a JSON response with `status` and returns its body. */
export async function expectJson<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
  return JSON.parse(text) as T;
}

/** Asserts the error envelope `{ error: { code, message } }` with `status` and `code`. */
export async function expectError(res: Response, status: number, code: string) {
  const body = await expectJson<ErrorBody>(res, status);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

/** Creates a request as `agentKey` and returns it; fails the test unless it was a 201. */
export async function createRequest(
  t: TestWrit,
  body: Record<string, unknown>,
  agentKey = keyOf(t, "report-agent"),
): Promise<RequestBody> {
  return expectJson<RequestBody>(
    await t.call("POST", "/v1/requests", { key: agentKey, body }),
    201,
  );
}

/** Reads a request as auditor dana; expects a 200. */
export async function readRequest(t: TestWrit, id: string): Promise<RequestBody> {
  return expectJson<RequestBody>(
    await t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, "dana") }),
    200,
  );
}

/** Approves as `reviewer` (an id with a key in `t.keys`); expects a 200. */
export async function approveAs(t: TestWrit, reviewer: string, id: string) {
  return expectJson<RequestBody>(
    await t.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(t, reviewer), body: {} }),
    200,
  );
}

/** Collects the JWT of an approved request; expects a 200. */
export async function collectToken(
  t: TestWrit,
  id: string,
  agentKey = keyOf(t, "report-agent"),
): Promise<string> {
  const body = await expectJson<{ credential: { type: string; token: string } }>(
    await t.call("POST", `/v1/requests/${id}/credential`, { key: agentKey }),
    200,
  );
  return body.credential.token;
}

/** An s3 read, approved at once and collected: the token for `billing-api`. */
export async function issuedToken(t: TestWrit): Promise<{ id: string; token: string }> {
  const { id } = await createRequest(t, S3_READ);
  return { id, token: await collectToken(t, id) };
}

/** Every recorded event matching `query`, read as auditor dana, following `next` cursors. */
export async function allEvents(
  t: TestWrit,
  query: Record<string, string> = {},
  pageSize = 1000,
): Promise<EventBody[]> {
  const out: EventBody[] = [];
  let after: string | undefined;
  for (;;) {
    const params = new URLSearchParams({
      ...query,
      limit: String(pageSize),
      ...(after ? { after } : {}),
    });
    const page = await expectJson<{ items: EventBody[]; next?: string }>(
      await t.call("GET", `/v1/events?${params}`, { key: keyOf(t, "dana") }),
      200,
    );
    out.push(...page.items);
    if (page.next === undefined) return out;
    after = page.next;
  }
}

/** Every request, newest first, read as auditor dana, following `next` cursors. */
export async function allRequests(t: TestWrit): Promise<RequestBody[]> {
  const out: RequestBody[] = [];
  let cursor: string | undefined;
  for (;;) {
    const params = new URLSearchParams({ limit: "500", ...(cursor ? { cursor } : {}) });
    const page = await expectJson<{ items: RequestBody[]; next?: string }>(
      await t.call("GET", `/v1/requests?${params}`, { key: keyOf(t, "dana") }),
      200,
    );
    out.push(...page.items);
    if (page.next === undefined) return out;
    cursor = page.next;
  }
}

/**
 * The event types of a request's whole approval flow: created, decided,
 * approved by two reviewers, its JWT collected, used once and refused a replay.
 */
export const APPROVAL_FLOW_EVENTS = [
  "request.created",
  "request.decided",
  "approval.granted",
  "approval.granted",
  "request.approved",
  "credential.issued",
  "token.used",
  "token.replay_blocked",
] as const;

/**
 * Turns off the limit on refused consumes, for tests that replay one token
 * many times to build a long story, not to test the limit.
 */
export const NO_REFUSAL_LIMIT = {
  rate_limits: { refusals_per_minute_per_resource_server: 0 },
} as const;
