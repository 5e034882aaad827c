import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AwsConfigValue } from "../../src/config/aws-schema.js";
import { ConfigError } from "../../src/config/load.js";
import { createAwsCredentials } from "../../src/config/wire-aws.js";
import { issuedAwsRequest } from "../support/aws-requests.js";
import { capturingLogger } from "../support/captured-log.js";
import {
  type FakeAws,
  startFakeAws,
  TEST_ACCESS_KEY_ID,
  TEST_REGION,
  TEST_SECRET_ACCESS_KEY,
} from "../support/fake-aws.js";
import { ManualClock } from "../support/harness.js";

// writ on ECS, EKS or EC2 signs with a role session, and a role assumed from a
// role session (role chaining) lasts at most an hour whatever the role allows.

const ROLE_SESSION = "arn:aws:sts::111122223333:assumed-role/writ-broker/i-0abc";
const REPORTS_ROLE = "arn:aws:iam::111122223333:role/writ-reports";

const fakes: FakeAws[] = [];

afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake.close();
});

function awsConfig(sessionDurationSeconds: number): AwsConfigValue {
  return {
    region: TEST_REGION,
    roles: [{ resource_pattern: "arn:aws:s3:::reports/*", role_arn: REPORTS_ROLE }],
    session_duration_seconds: sessionDurationSeconds,
    revocation_policy_name: "writ-revocations",
  };
}

/** A fake AWS whose test key belongs to `callerArn`, and writ's AWS wiring started against it. */
async function start(
  callerArn: string,
  sessionDurationSeconds: number,
  before: (fake: FakeAws) => void = () => {},
) {
  const fake = await startFakeAws({ callerArn });
  fakes.push(fake);
  before(fake);
  const { logger, lines } = capturingLogger();
  const created = createAwsCredentials(awsConfig(sessionDurationSeconds), {
    clock: new ManualClock(),
    logger,
    clients: fake.clients({ maxAttempts: 1 }),
  });
  const identityCalls = () => fake.calls.filter((c) => c.action === "GetCallerIdentity").length;
  return { created, lines, identityCalls };
}

describe("AWS session length and role chaining", () => {
  it("refuses to start when writ signs as a role session and sessions may pass an hour", async () => {
    const { created } = await start(ROLE_SESSION, 7200);
    const error = await created.then(
      (aws) => {
        aws?.close();
        return undefined;
      },
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/aws\.session_duration_seconds/);
    expect((error as ConfigError).message).toMatch(/3600/);
    expect((error as ConfigError).message).toContain(ROLE_SESSION);
  });

  it("starts when writ signs as an IAM user, whatever the session length", async () => {
    const { created, identityCalls } = await start("arn:aws:iam::111122223333:user/writ", 43_200);
    (await created)?.close();
    expect(identityCalls()).toBe(1);
  });

  it("asks who it is once at start, and starts as a role session when sessions fit in an hour", async () => {
    const { created, identityCalls } = await start(ROLE_SESSION, 3600);
    (await created)?.close();
    expect(identityCalls()).toBe(1);
  });

  it("starts with a warning when it cannot tell who it is", async () => {
    const { created, lines } = await start(ROLE_SESSION, 7200, (fake) =>
      fake.failNext("GetCallerIdentity", "ServiceUnavailable"),
    );
    (await created)?.close();
    expect(lines).toContainEqual(
      expect.objectContaining({ level: "warn", message: expect.stringMatching(/role chaining/) }),
    );
  });
});

describe("AWS target roles and writ's own account", () => {
  it("refuses to start with a target role in another account, naming the role's key", async () => {
    const { created } = await start("arn:aws:iam::444455556666:user/writ", 900);
    const error = await created.then(
      (aws) => {
        aws?.close();
        return undefined;
      },
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain("aws.roles[0].role_arn");
    expect(message).toContain("111122223333");
    expect(message).toContain("444455556666");
  });

  it("starts with target roles in its own account", async () => {
    const { created } = await start("arn:aws:iam::111122223333:user/writ", 900);
    const aws = await created;
    expect(aws).toBeDefined();
    aws?.close();
  });
});

describe("AWS clients writ builds itself", () => {
  /** A loopback endpoint that takes connections and never answers: a hung AWS endpoint. */
  async function hungEndpoint() {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return {
      url: `http://127.0.0.1:${address.port}`,
      close: () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    };
  }

  const ENV = [
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
  ] as const;

  it("gives up on an endpoint that never answers and answers aws_unavailable", {
    timeout: 20_000,
  }, async () => {
    const hung = await hungEndpoint();
    const saved = ENV.map((name) => process.env[name]);
    // The SDK reads endpoints and credentials from the environment itself.
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_STS: hung.url,
      AWS_ENDPOINT_URL_IAM: hung.url,
      AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
    });
    delete process.env.AWS_SESSION_TOKEN;
    const clock = new ManualClock();
    const aws = await createAwsCredentials(awsConfig(900), {
      clock,
      logger: capturingLogger().logger,
      requestTimeoutMs: 300,
    });
    try {
      const { request } = issuedAwsRequest({
        now: clock.now(),
        roleArn: REPORTS_ROLE,
        sessionSeconds: 900,
      });
      await expect(aws?.minter.mint(request, clock.now())).rejects.toMatchObject({
        code: "aws_unavailable",
      });
      await expect(aws?.revoker.revoke(request, "completed")).rejects.toMatchObject({
        code: "aws_unavailable",
      });
    } finally {
      aws?.close();
      ENV.forEach((name, index) => {
        const value = saved[index];
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      });
      await hung.close();
    }
  });

  it("says when writ has no AWS credentials of its own, and how to give it some", async () => {
    const fake = await startFakeAws();
    fakes.push(fake);
    const empty = await mkdtemp(join(tmpdir(), "writ-no-aws-"));
    // Nothing anywhere in the SDK's default chain: no variables, no files, no
    // metadata service (EC2's is switched off; ECS's and EKS's are not named).
    const env: Record<string, string | undefined> = {
      AWS_ENDPOINT_URL_STS: fake.url,
      AWS_ENDPOINT_URL_IAM: fake.url,
      AWS_CONFIG_FILE: join(empty, "config"),
      AWS_SHARED_CREDENTIALS_FILE: join(empty, "credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
      AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
      AWS_ROLE_ARN: undefined,
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
    };
    const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
    const restore = (values: Record<string, string | undefined>) => {
      for (const [name, value] of Object.entries(values)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    };
    restore(env);
    const clock = new ManualClock();
    const { logger, lines } = capturingLogger();
    const aws = await createAwsCredentials(awsConfig(900), { clock, logger });
    try {
      const { request } = issuedAwsRequest({
        now: clock.now(),
        roleArn: REPORTS_ROLE,
        sessionSeconds: 900,
      });
      const minted = await aws?.minter.mint(request, clock.now()).catch((e: unknown) => e);
      const revoked = await aws?.revoker.revoke(request, "completed").catch((e: unknown) => e);
      for (const error of [minted, revoked]) {
        // Still 503: on EC2, ECS or EKS a metadata service that is briefly
        // unreachable ends the SDK's chain with the same error, and a retry helps.
        expect(error).toMatchObject({
          code: "aws_unavailable",
          details: { aws_error: "CredentialsProviderError" },
        });
        // The caller is told what is wrong, not that AWS is down.
        const message = (error as Error).message;
        expect(message).toMatch(/no usable AWS credentials/);
        expect(message).not.toMatch(/could not be reached/);
      }
      // At start, and then for each operation, the log names the cause and the fix.
      expect(lines[0]).toMatchObject({
        level: "warn",
        message: expect.stringMatching(/^writ has no usable AWS credentials of its own/),
        fields: { error: "CredentialsProviderError" },
      });
      const named = lines.filter(
        (line) =>
          line.level === "error" &&
          /no usable AWS credentials/.test(line.message) &&
          line.fields?.aws_error === "CredentialsProviderError",
      );
      expect(named.map((line) => line.fields?.operation)).toEqual([
        "sts:AssumeRole",
        "sts:GetCallerIdentity",
      ]);
      expect(named[0]?.message).toMatch(/credential chain/);
      // Nothing was sent: there was nothing to sign with.
      expect(fake.calls).toEqual([]);
      expect(JSON.stringify(lines)).not.toContain(empty);
    } finally {
      aws?.close();
      restore(saved);
      await rm(empty, { recursive: true, force: true });
    }
  });
});
