import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { IAMClient } from "@aws-sdk/client-iam";
import { STSClient } from "@aws-sdk/client-sts";
import { verifySigV4 } from "./sigv4.js";

// A loopback server speaking the AWS Query protocol of STS and IAM: form-encoded
// POSTs, XML answers, SigV4 checked against the test key. The real SDK clients
// are pointed at it with `endpoint`; nothing of writ's own code is faked.

/** The key writ's own AWS identity signs with in tests. */
export const TEST_ACCESS_KEY_ID = "AKIAWRITTESTKEY00001";
export const TEST_SECRET_ACCESS_KEY = "writ-test-secret/NOT+A+REAL+KEY/0123456789ab";
export const TEST_REGION = "eu-west-1";

/** The largest inline policy total IAM allows on one role (characters, whitespace excluded). */
export const IAM_ROLE_POLICY_CAP = 10_240;
const SESSION_POLICY_CAP = 2048;

export type FakeFailure =
  | "AccessDenied"
  | "Throttling"
  | "PackedPolicyTooLarge"
  | "ServiceUnavailable"
  | "LimitExceeded";

/** One call that reached the server with a valid signature. */
export interface FakeAwsCall {
  readonly service: "sts" | "iam";
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
  /** The whole request body and headers as sent, to search for leaks. */
  readonly raw: string;
}

/** A session the fake STS issued. */
export interface IssuedSession {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: number;
  readonly roleArn: string;
  readonly sessionName: string;
  readonly sourceIdentity: string | undefined;
  readonly policy: string | undefined;
  readonly durationSeconds: number;
  readonly tags: Readonly<Record<string, string>>;
}

export interface FakeAws {
  readonly url: string;
  readonly calls: FakeAwsCall[];
  readonly sessions: IssuedSession[];
  /** Requests refused for their signature (code per request). */
  readonly signatureFailures: string[];
  /** Fails the next `times` calls of `action` with `failure`. */
  failNext(action: string, failure: FakeFailure, times?: number): void;
  /**
   * Holds every call of `action` from now on unanswered (each is in `calls` as
   * it arrives) until the returned function is called; then all are answered.
   */
  hold(action: string): () => void;
  /**
   * Answers reads of `roleName`'s policy `name` with the document as it is now,
   * whatever is written meanwhile, until the returned function is called: IAM's
   * eventually consistent reads, which may not show a recent write yet.
   */
  staleReads(roleName: string, name: string): () => void;
  /** The inline policy `name` of role `roleName`, as stored, or undefined. */
  rolePolicy(roleName: string, name: string): string | undefined;
  /** Stores an inline policy directly, e.g. to fill a role toward IAM's size cap. */
  setRolePolicy(roleName: string, name: string, document: string): void;
  /** Resolves with the first call (past or future) after `from` matching `match`; bounded. */
  waitForCall(
    match: (call: FakeAwsCall) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<FakeAwsCall>;
  /** Real SDK clients pointed at this server with the test key. */
  clients(options?: { maxAttempts?: number }): { sts: STSClient; iam: IAMClient };
  close(): Promise<void>;
}

const XMLNS = {
  sts: "https://sts.amazonaws.com/doc/2011-06-15/",
  iam: "https://iam.amazonaws.com/doc/2010-05-08/",
} as const;

const ACTIONS = {
  sts: new Set(["AssumeRole", "GetCallerIdentity"]),
  iam: new Set(["GetRolePolicy", "PutRolePolicy"]),
} as const;

const ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;
const STS_NAME = /^[\w+=,.@-]{2,64}$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;
/** STS takes session policy text in Latin-1 only, besides tab, line feed and carriage return. */
const POLICY_TEXT = /^[\t\n\r\u0020-\u00FF]+$/;

function xml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;");
}

function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

class AwsError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: "Sender" | "Receiver" = "Sender",
  ) {
    super(message);
  }
}

const FAILURES: Record<FakeFailure, () => AwsError> = {
  AccessDenied: () =>
    new AwsError(
      403,
      "AccessDenied",
      `User: arn:aws:iam::111122223333:user/writ-broker is not authorized to perform: sts:AssumeRole (key ${TEST_ACCESS_KEY_ID})`,
    ),
  Throttling: () => new AwsError(400, "Throttling", "Rate exceeded"),
  PackedPolicyTooLarge: () =>
    new AwsError(
      400,
      "PackedPolicyTooLarge",
      "Packed size of the session policy and session tags exceeds the limit.",
    ),
  ServiceUnavailable: () =>
    new AwsError(503, "ServiceUnavailable", "Service is unavailable.", "Receiver"),
  LimitExceeded: () => new AwsError(409, "LimitExceeded", "Cannot exceed quota."),
};

/** IAM counts policy size without whitespace. */
function policyChars(document: string): number {
  return document.replace(/\s/g, "").length;
}

/**
 * Starts the fake on a free loopback port. `now` is the clock session
 * expirations are computed with (the broker's injected clock in tests).
 */
/** writ's own identity in the fake unless a test says otherwise: an IAM user. */
export const TEST_CALLER_ARN = "arn:aws:iam::111122223333:user/writ";

export async function startFakeAws(
  options: {
    now?: () => number;
    /**
     * The identity the test key belongs to, as GetCallerIdentity names it. An
     * `assumed-role` ARN makes the key a role session: AssumeRole from it is
     * role chaining, which STS caps at one hour.
     */
    callerArn?: string;
  } = {},
): Promise<FakeAws> {
  const now = options.now ?? Date.now;
  const callerArn = options.callerArn ?? TEST_CALLER_ARN;
  const chained = /:assumed-role\//.test(callerArn);
  const calls: FakeAwsCall[] = [];
  const sessions: IssuedSession[] = [];
  const signatureFailures: string[] = [];
  const failures = new Map<string, { failure: FakeFailure; times: number }>();
  // The inline policies of the caller's own account's roles, by role name: like
  // IAM, the role calls name no account and act on the caller's.
  const roles = new Map<string, Map<string, string>>();
  const holds = new Map<string, Promise<void>>();
  /** Documents reads answer instead of the stored ones (undefined: none yet), by role and name. */
  const stale = new Map<string, string | undefined>();
  const emitter = new EventEmitter();
  emitter.setMaxListeners(100);

  function answer(res: ServerResponse, status: number, body: string) {
    res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": randomUUID() });
    res.end(body);
  }

  function errorBody(service: "sts" | "iam", error: AwsError): string {
    return `<ErrorResponse xmlns="${XMLNS[service]}"><Error><Type>${error.type}</Type><Code>${xml(error.code)}</Code><Message>${xml(error.message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
  }

  function result(service: "sts" | "iam", action: string, inner: string): string {
    const metadata = `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>`;
    const body = inner === "" ? "" : `<${action}Result>${inner}</${action}Result>`;
    return `<${action}Response xmlns="${XMLNS[service]}">${body}${metadata}</${action}Response>`;
  }

  function getCallerIdentity(): string {
    const account = /^arn:[^:]+:[^:]+::(\d{12}):/.exec(callerArn)?.[1] ?? "";
    return result(
      "sts",
      "GetCallerIdentity",
      `<Arn>${xml(callerArn)}</Arn><UserId>AIDAWRITTESTUSER0001</UserId><Account>${account}</Account>`,
    );
  }

  function assumeRole(params: Record<string, string>): string {
    const roleArn = params.RoleArn ?? "";
    const role = ROLE_ARN.exec(roleArn);
    const sessionName = params.RoleSessionName ?? "";
    const duration = Number(params.DurationSeconds ?? "3600");
    if (role === null) throw new AwsError(400, "ValidationError", "RoleArn is not a role ARN.");
    if (!STS_NAME.test(sessionName)) {
      throw new AwsError(400, "ValidationError", "RoleSessionName does not satisfy constraints.");
    }
    if (!Number.isInteger(duration) || duration < 900 || duration > 43_200) {
      throw new AwsError(400, "ValidationError", "DurationSeconds must be 900-43200.");
    }
    if (chained && duration > 3600) {
      throw new AwsError(
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
      );
    }
    if (params.SourceIdentity !== undefined && !STS_NAME.test(params.SourceIdentity)) {
      throw new AwsError(400, "ValidationError", "SourceIdentity does not satisfy constraints.");
    }
    const policy = params.Policy;
    if (policy !== undefined) {
      if (policy.length > SESSION_POLICY_CAP) {
        throw new AwsError(400, "ValidationError", "Policy exceeds 2048 characters.");
      }
      if (!POLICY_TEXT.test(policy)) {
        throw new AwsError(
          400,
          "ValidationError",
          "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        );
      }
      try {
        JSON.parse(policy);
      } catch {
        throw new AwsError(400, "MalformedPolicyDocument", "The policy is not valid JSON.");
      }
    }
    const tags: Record<string, string> = {};
    for (let i = 1; params[`Tags.member.${i}.Key`] !== undefined; i++) {
      const key = params[`Tags.member.${i}.Key`] ?? "";
      const value = params[`Tags.member.${i}.Value`] ?? "";
      if (!TAG_KEY.test(key) || !TAG_VALUE.test(value) || i > 50) {
        throw new AwsError(400, "ValidationError", "Session tags do not satisfy constraints.");
      }
      tags[key] = value;
    }
    const session: IssuedSession = {
      accessKeyId: `ASIA${randomBytes(8).toString("hex").toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString("base64"),
      sessionToken: `FwoG${randomBytes(96).toString("base64")}`,
      expiration: Math.floor(now() / 1000) * 1000 + duration * 1000,
      roleArn,
      sessionName,
      sourceIdentity: params.SourceIdentity,
      policy,
      durationSeconds: duration,
      tags,
    };
    sessions.push(session);
    const packed = Math.min(
      99,
      Math.ceil(((policy?.length ?? 0) + JSON.stringify(tags).length) / 40),
    );
    return result(
      "sts",
      "AssumeRole",
      `${session.sourceIdentity !== undefined ? `<SourceIdentity>${xml(session.sourceIdentity)}</SourceIdentity>` : ""}<AssumedRoleUser><Arn>arn:aws:sts::${role[1]}:assumed-role/${xml(role[2] ?? "")}/${xml(sessionName)}</Arn><AssumedRoleId>AROA${randomBytes(8).toString("hex").toUpperCase()}:${xml(sessionName)}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>${session.accessKeyId}</AccessKeyId><SecretAccessKey>${xml(session.secretAccessKey)}</SecretAccessKey><SessionToken>${xml(session.sessionToken)}</SessionToken><Expiration>${isoSeconds(session.expiration)}</Expiration></Credentials><PackedPolicySize>${packed}</PackedPolicySize>`,
    );
  }

  function getRolePolicy(params: Record<string, string>): string {
    const roleName = params.RoleName ?? "";
    const policyName = params.PolicyName ?? "";
    const staleKey = `${roleName}\n${policyName}`;
    const document = stale.has(staleKey)
      ? stale.get(staleKey)
      : roles.get(roleName)?.get(policyName);
    if (document === undefined) {
      throw new AwsError(
        404,
        "NoSuchEntity",
        `The role policy with name ${policyName} cannot be found.`,
      );
    }
    return result(
      "iam",
      "GetRolePolicy",
      `<RoleName>${xml(roleName)}</RoleName><PolicyName>${xml(policyName)}</PolicyName><PolicyDocument>${xml(encodeURIComponent(document))}</PolicyDocument>`,
    );
  }

  function putRolePolicy(params: Record<string, string>): string {
    const roleName = params.RoleName ?? "";
    const policyName = params.PolicyName ?? "";
    const document = params.PolicyDocument ?? "";
    try {
      JSON.parse(document);
    } catch {
      throw new AwsError(400, "MalformedPolicyDocument", "Syntax errors in policy.");
    }
    const policies = roles.get(roleName) ?? new Map<string, string>();
    let total = policyChars(document);
    for (const [name, other] of policies) if (name !== policyName) total += policyChars(other);
    if (total > IAM_ROLE_POLICY_CAP) {
      throw new AwsError(
        409,
        "LimitExceeded",
        `Maximum policy size of ${IAM_ROLE_POLICY_CAP} bytes exceeded for role ${roleName}`,
      );
    }
    policies.set(policyName, document);
    roles.set(roleName, policies);
    return result("iam", "PutRolePolicy", "");
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const verdict = verifySigV4(
      { method: req.method ?? "", url: req.url ?? "/", headers: req.headers, body },
      (key) => (key === TEST_ACCESS_KEY_ID ? TEST_SECRET_ACCESS_KEY : undefined),
    );
    const form = new URLSearchParams(body.toString("utf8"));
    const action = form.get("Action") ?? "";
    const guessed = ACTIONS.iam.has(action) ? "iam" : "sts";
    if (!verdict.ok) {
      signatureFailures.push(verdict.code);
      answer(res, 403, errorBody(guessed, new AwsError(403, verdict.code, verdict.message)));
      return;
    }
    const service = verdict.service === "iam" ? "iam" : verdict.service === "sts" ? "sts" : null;
    if (
      req.method !== "POST" ||
      service === null ||
      !/^application\/x-www-form-urlencoded/.test(req.headers["content-type"] ?? "")
    ) {
      answer(res, 400, errorBody(guessed, new AwsError(400, "InvalidAction", "Not a Query call.")));
      return;
    }
    const params: Record<string, string> = {};
    for (const [k, v] of form) params[k] = v;
    const version = service === "sts" ? "2011-06-15" : "2010-05-08";
    const call: FakeAwsCall = {
      service,
      action,
      params,
      raw: `${JSON.stringify(req.headers)}\n${body.toString("utf8")}`,
    };
    calls.push(call);
    const held = holds.get(action);
    if (held !== undefined) {
      emitter.emit("call");
      await held;
    }
    try {
      if (!ACTIONS[service].has(action) || params.Version !== version) {
        throw new AwsError(400, "InvalidAction", `Could not find operation ${action}.`);
      }
      const injected = failures.get(action);
      if (injected !== undefined && injected.times > 0) {
        injected.times--;
        throw FAILURES[injected.failure]();
      }
      const xmlBody =
        action === "AssumeRole"
          ? assumeRole(params)
          : action === "GetCallerIdentity"
            ? getCallerIdentity()
            : action === "GetRolePolicy"
              ? getRolePolicy(params)
              : putRolePolicy(params);
      answer(res, 200, xmlBody);
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      answer(res, error.status, errorBody(service, error));
    } finally {
      // After the answer: a test waiting for a call then sees its effect too.
      emitter.emit("call");
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    calls,
    sessions,
    signatureFailures,
    failNext(action, failure, times = 1) {
      failures.set(action, { failure, times });
    },
    hold(action) {
      let release = () => {};
      holds.set(
        action,
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      );
      return () => {
        holds.delete(action);
        release();
      };
    },
    staleReads(roleName, name) {
      const key = `${roleName}\n${name}`;
      stale.set(key, roles.get(roleName)?.get(name));
      return () => {
        stale.delete(key);
      };
    },
    rolePolicy: (roleName, name) => roles.get(roleName)?.get(name),
    setRolePolicy(roleName, name, document) {
      const policies = roles.get(roleName) ?? new Map<string, string>();
      policies.set(name, document);
      roles.set(roleName, policies);
    },
    waitForCall(match, { from = 0, timeoutMs = 5000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = calls.slice(from).find(match);
          if (found === undefined) return false;
          clearTimeout(timer);
          emitter.off("call", onCall);
          resolve(found);
          return true;
        };
        const onCall = () => void check();
        const timer = setTimeout(() => {
          emitter.off("call", onCall);
          reject(new Error(`no matching AWS call within ${timeoutMs} ms`));
        }, timeoutMs);
        emitter.on("call", onCall);
        check();
      });
    },
    clients({ maxAttempts = 3 } = {}) {
      const shared = {
        endpoint: url,
        credentials: {
          accessKeyId: TEST_ACCESS_KEY_ID,
          secretAccessKey: TEST_SECRET_ACCESS_KEY,
        },
        maxAttempts,
      };
      return {
        sts: new STSClient({ ...shared, region: TEST_REGION }),
        iam: new IAMClient({ ...shared, region: "us-east-1" }),
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
