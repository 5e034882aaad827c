import type { Agent, Principal, Reviewer } from "../domain/principal.js";

/** Who holds which key, and who is in which group. */
export interface IdentityDirectory {
  /** The principal a bearer key belongs to, or undefined. Compares in constant time. */
  authenticate(key: string): Promise<Principal | undefined>;
  agent(id: string): Agent | undefined;
  reviewer(id: string): Reviewer | undefined;
}
