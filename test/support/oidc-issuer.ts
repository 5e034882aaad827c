import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  type KeyObject,
  SignJWT,
} from "jose";

type PrivateKey = CryptoKey | KeyObject;

export interface TokenOptions {
  /** Defaults to the issuer's RS256 key. */
  alg?: "RS256" | "ES256" | "HS256";
  /** Overrides the header's `kid` (e.g. one the JWKS does not list). */
  kid?: string;
  /** Sign with this key instead of a published one. */
  key?: PrivateKey | Uint8Array;
  /** Seconds since the epoch; default: the issuer's `now()`. */
  iat?: number;
  /** Lifetime in seconds (default 300). */
  ttlSeconds?: number;
}

export interface LoopbackIssuer {
  /** `http://127.0.0.1:<port>` — the `iss` it signs with. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** How many times the JWKS was served. */
  jwksFetches(): number;
  /** A token with these claims (plus `iss`, `iat`, `exp`), signed with a published key. */
  sign(claims: JWTPayload, options?: TokenOptions): Promise<string>;
  /** A key pair the JWKS does not list, to sign tokens it must refuse. */
  strangerKey(): Promise<PrivateKey>;
  close(): Promise<void>;
}

/**
 * An OpenID issuer on a loopback port, as a platform (GitHub Actions,
 * Kubernetes) runs one: a discovery document and a JWKS over real HTTP, and
 * tokens signed with jose.
 */
export async function startOidcIssuer(options: { now: () => number }): Promise<LoopbackIssuer> {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const keys: JWK[] = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
  ];
  let fetches = 0;
  let issuer = "";
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === "/.well-known/openid-configuration") {
      send(200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        id_token_signing_alg_values_supported: ["RS256", "ES256"],
      });
    } else if (req.url === "/jwks") {
      fetches++;
      send(200, { keys });
    } else {
      send(404, { error: "not_found" });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    jwksFetches: () => fetches,
    async sign(claims, tokenOptions = {}) {
      const alg = tokenOptions.alg ?? "RS256";
      const key = tokenOptions.key ?? (alg === "ES256" ? ec.privateKey : rsa.privateKey);
      const iat = tokenOptions.iat ?? Math.floor(options.now() / 1000);
      return new SignJWT({ iss: issuer, ...claims })
        .setProtectedHeader({
          alg,
          typ: "JWT",
          kid: tokenOptions.kid ?? (alg === "ES256" ? "ec-1" : "rsa-1"),
        })
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + (tokenOptions.ttlSeconds ?? 300))
        .sign(key);
    },
    async strangerKey() {
      return (await generateKeyPair("RS256")).privateKey;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
