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

/** The claims of a writ JWT. */
export interface TokenClaims {
  readonly sub: string;
  readonly aud: string;
  readonly jti: string;
  readonly exp: number;
  readonly requestId: string;
  readonly action: string;
  readonly resource: string;
}

/** A writ JWT as a resource server presented it: read, not yet trusted. */
export interface PresentedToken {
  readonly claims: TokenClaims;
  /** SHA-256 of the exact token text, base64url: what consume compares with the record. */
  readonly digest: string;
}

/**
 * Reads a presented writ JWT: its shape, the pinned algorithm, a key id of the
 * ring, the issuer and writ's claims. Throws `token_invalid` otherwise.
 *
 * It does not check the signature, and nothing it returns is trusted on its own.
 * writ records the digest of every token it issues, and consume accepts a token
 * only when its digest equals that record: only the exact text writ signed and
 * handed out can match, which is a stronger binding than any signature check
 * (a token signed with a leaked key, or never handed out, matches nothing).
 */
export interface TokenReader {
  read(token: string): PresentedToken;
  /**
   * Verifies the token's signature, issuer and expiry with the ring's keys;
   * throws `token_invalid` otherwise. Only for a credential recorded without a
   * digest (issued by a writ from before digests were recorded, during a
   * rolling upgrade): every other token is bound by its digest.
   */
  verify(token: string, now: number): Promise<void>;
}
