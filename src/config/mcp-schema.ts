import { z } from "zod";

/** The MCP server at `/mcp` on the HTTP API. */
export const McpConfig = z.strictObject({
  /** Serve `/mcp` (Streamable HTTP) for agents, with the same bearer auth as the API. */
  http: z.boolean().default(true),
  /**
   * DANGEROUS. Offer a tool that returns the credential itself, which puts it
   * in the model's context (and any transcript or log of it). Off by default:
   * the agent's runtime collects it out of band (`writ credential`, the SDK).
   */
  return_credentials: z.boolean().default(false),
});
