import { type Command, EXIT } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseIdAndJson,
  printJson,
  reportApiErrors,
} from "./client-context.js";

export const completeCommand: Command = {
  path: ["complete"],
  summary: "Report the action done; an unused credential ends now (agents)",
  help: `
Usage: writ complete <id> [--json]

Tells writ that the action your request was for is done, whether it succeeded
or not. A credential not used yet ends now (its token no longer consumes; an AWS
session is denied); a used one stays used and the report is recorded. Running it
again is harmless.

Options:
  --json   Print the request as JSON

Exit codes: 0 completed; 1 server or network error (e.g. not_completable);
2 bad command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, json } = parseIdAndJson(args);
    const client = connectFromEnv(io);
    return reportApiErrors("complete", io, async () => {
      const request = await client.complete(id);
      if (json) printJson(io, request);
      else io.stdout(`${request.id} ${request.status}\n`);
      return EXIT.ok;
    });
  },
};
