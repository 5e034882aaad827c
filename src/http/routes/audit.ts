import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AuditIntegrity } from "../../ports/audit-integrity.js";
import type { AuthEnv } from "../auth.js";

export const CheckpointKeyView = z
  .object({
    key_id: z.string().openapi({ description: "RFC 7638 thumbprint; checkpoints name it." }),
    jwk: z
      .object({
        kty: z.literal("OKP"),
        crv: z.literal("Ed25519"),
        x: z.string(),
        kid: z.string(),
        alg: z.literal("EdDSA"),
        use: z.literal("sig"),
      })
      .openapi({ description: "The Ed25519 public key that signs audit log checkpoints." }),
  })
  .openapi("CheckpointKey");

const checkpointKeyRoute = createRoute({
  method: "get",
  path: "/v1/audit/checkpoint-key",
  tags: ["audit"],
  summary: "The public key of the audit log's signed checkpoints (no key needed)",
  description:
    "A public key, served without authentication like the JWKS, so that anyone holding a copy of the log can verify it offline (`writ audit verify --checkpoint-key`). It is not a JWT signing key.",
  responses: {
    200: {
      description: "The checkpoint public key",
      content: { "application/json": { schema: CheckpointKeyView } },
    },
  },
});

/**
 * Routes that need no key. Registered before the `/v1/*` authentication
 * middleware, so they answer without reaching it.
 */
export function publicAuditRoutes(app: OpenAPIHono<AuthEnv>, audit: AuditIntegrity) {
  app.openapi(checkpointKeyRoute, (c) => {
    const { keyId, jwk } = audit.checkpointKey();
    c.header("Cache-Control", "public, max-age=300");
    return c.json(
      {
        key_id: keyId,
        jwk: {
          kty: "OKP" as const,
          crv: "Ed25519" as const,
          x: jwk.x ?? "",
          kid: keyId,
          alg: "EdDSA" as const,
          use: "sig" as const,
        },
      },
      200,
    );
  });
}
