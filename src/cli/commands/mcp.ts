import { parseArgs } from "node:util";
import type { Command } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  rejectPositionals,
} from "./client-context.js";

const HELP = `
Usage: writ mcp [--return-credentials]

Runs the writ MCP server on stdin/stdout, for an MCP client (Claude Desktop,
an IDE, an agent framework) to start. Its tools let the model request access
for one action, wait for the decision and report the action done; they act as
the agent whose key is in WRIT_KEY.

The tools never return a credential: the agent's runtime collects it out of
band (\`writ credential <id>\` or the SDK), so it never enters the model's
context, transcripts or logs.

Options:
  --return-credentials   DANGEROUS: add a tool that returns the credential to
                         the model. Only for runtimes that cannot collect it
                         any other way.

Nothing but MCP messages is written to stdout.
${ENVIRONMENT_HELP}
`;

export const mcpCommand: Command = {
  path: ["mcp"],
  summary: "Run the MCP server on stdio for an MCP client (agents)",
  help: HELP,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: { "return-credentials": { type: "boolean", default: false } },
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const client = connectFromEnv(io);
    const returnCredentials = values["return-credentials"];
    if (returnCredentials) {
      io.stderr(
        "writ mcp: WARNING: --return-credentials puts credentials in the model's context.\n",
      );
    }
    // Loaded here, not at start: every other command would pay for the MCP SDK.
    const [{ createWritMcpServer }, { StdioServerTransport }] = await Promise.all([
      import("../../mcp/server.js"),
      import("@modelcontextprotocol/sdk/server/stdio.js"),
    ]);
    const server = createWritMcpServer({ client, returnCredentials });
    const transport = new StdioServerTransport(process.stdin, process.stdout);
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => resolve();
      process.stdin.once("end", () => resolve());
    });
    await server.connect(transport);
    io.stderr(`writ mcp: serving ${client.url} on stdio\n`);
    await closed;
    await server.close();
    return 0;
  },
};
