import type { AccessRequest, CredentialType, IssuedCredential } from "../domain/request.js";

/** The credential handed to the agent, once. Secret material lives only here. */
export type Credential =
  | { readonly type: "jwt"; readonly token: string; readonly expiresAt: number }
  | {
      readonly type: "aws";
      readonly accessKeyId: string;
      readonly secretAccessKey: string;
      readonly sessionToken: string;
      readonly expiresAt: number;
    };

export interface Minted {
  readonly credential: Credential;
  /** What is recorded about it: identifiers only. */
  readonly record: IssuedCredential;
}

/** Mints a credential bound to exactly one approved request. */
export interface Minter {
  readonly type: CredentialType;
  /**
   * Checks, when the request is made and before it is recorded, that a
   * credential can be minted for it (AWS: the action is in the catalogue, the
   * resource is a well-formed ARN, the session policy fits). Throws a coded
   * `WritError` otherwise. Calls no credential provider.
   */
  validate?(request: AccessRequest): Promise<void>;
  mint(request: AccessRequest, now: number): Promise<Minted>;
}

/** The verified content of a writ JWT. */
export interface TokenClaims {
  readonly sub: string;
  readonly aud: string;
  readonly jti: string;
  readonly exp: number;
  readonly requestId: string;
  readonly action: string;
  readonly resource: string;
}

/** Checks writ JWTs: signature, issuer, expiry. Throws `token_invalid` otherwise. */
export interface TokenVerifier {
  verify(token: string, now: number): Promise<TokenClaims>;
}
