import { parseArgs } from "node:util";
import type { Command } from "../command.js";
import {
  AWS_REQUEST_HELP,
  AWS_REQUEST_OPTIONS,
  awsRequestPlan,
  requestAwsCredential,
} from "./aws-request.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  rejectPositionals,
  reportApiErrors,
} from "./client-context.js";
import { catchInterruptions } from "./interruptions.js";

const HELP = `
Usage: writ credential-process --action <action> --resource <arn> [options]

Asks writ for AWS credentials for one action on one resource (agent keys),
waits for approval, and prints them in the shape the AWS CLI and SDKs read
from a profile's credential_process:

  { "Version": 1, "AccessKeyId": "…", "SecretAccessKey": "…",
    "SessionToken": "…", "Expiration": "…" }

In ~/.aws/config (docs/aws.md has more):

  [profile q3-report]
  credential_process = writ credential-process --action s3:GetObject --resource arn:aws:s3:::reports/q3.csv --reason "Q3 summary"

Every run is a new request; the SDK calls it again as Expiration nears (the
AWS CLI and boto3 whenever less than 15 minutes remain: with a short session,
before every call). Prefer writ exec for work that makes more than one call.
Progress and errors go to stderr; stdout gets the JSON alone.

Options:
${AWS_REQUEST_HELP}

If the wait times out or is interrupted (SIGINT, SIGTERM, SIGHUP), writ
cancels the request so reviewers are no longer asked; interrupted while
collecting, it ends the session instead of printing it.

Exit codes: 0 printed; 1 server or network error, or the wait timed out; 2 bad
command line; 3 denied (also by the policies in force at collection),
cancelled, expired or revoked; 128 + the signal's number if interrupted.
${ENVIRONMENT_HELP}
`;

export const credentialProcessCommand: Command = {
  path: ["credential-process"],
  summary: "Print AWS credentials for one approved action as credential_process JSON (agents)",
  help: HELP,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: AWS_REQUEST_OPTIONS,
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const plan = awsRequestPlan(values);
    const client = connectFromEnv(io);
    const interruptions = catchInterruptions();
    try {
      return await reportApiErrors("credential-process", io, async () => {
        const outcome = await requestAwsCredential(
          client,
          io,
          "credential-process",
          plan,
          interruptions,
        );
        if (!outcome.ok) return outcome.exitCode;
        const { credential } = outcome;
        io.stdout(
          `${JSON.stringify({
            Version: 1,
            AccessKeyId: credential.access_key_id,
            SecretAccessKey: credential.secret_access_key,
            SessionToken: credential.session_token,
            Expiration: credential.expires_at,
          })}\n`,
        );
        return 0;
      });
    } finally {
      interruptions.stop();
    }
  },
};
