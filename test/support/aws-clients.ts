import { createServer } from "node:net";
import { STSClient } from "@aws-sdk/client-sts";
import { TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY } from "./fake-aws.js";

/** A loopback URL where nothing listens: an AWS endpoint that is down. */
export async function closedUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${address.port}`;
}

/** A real STS client for `endpoint`, signing with the test key id and `secret`. */
export function stsClientTo(endpoint: string, secret = TEST_SECRET_ACCESS_KEY): STSClient {
  return new STSClient({
    endpoint,
    region: TEST_REGION,
    credentials: { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: secret },
    maxAttempts: 1,
  });
}
