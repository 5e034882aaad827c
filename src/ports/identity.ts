import type { Agent, Auditor, Principal, Reviewer } from "../domain/principal.js";

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
}
