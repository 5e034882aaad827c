import type { Agent, Auditor, Principal, PrincipalKind, Reviewer } from "../domain/principal.js";

/** Who holds which key, and who is in which group. */
export interface IdentityDirectory {
  /**
   * The principal a bearer (a writ key, or a workload-identity JWT) belongs
   * to, or undefined when it is unknown. Keys compare in constant time. A
   * token that is refused for a reason worth telling its holder (an untrusted
   * issuer, an expired token) throws a `WritError` with that code instead.
   */
  authenticate(key: string): Promise<Principal | undefined>;
  agent(id: string): Agent | undefined;
  reviewer(id: string): Reviewer | undefined;
  auditor(id: string): Auditor | undefined;
  /**
   * Names the key the principal `kind`/`id` holds now, or undefined when it
   * holds none. The tag is derived from the stored hash and tells nothing about
   * the key, so it may be kept where the key may not (a console session). A new
   * key for the same id gets a new tag, which is how whatever was opened with the
   * old key learns that it has been replaced.
   */
  keyTag(kind: PrincipalKind, id: string): string | undefined;
}
