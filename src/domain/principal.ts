/** The kinds of principal that hold keys. A key belongs to exactly one kind. */
export type PrincipalKind = "agent" | "reviewer" | "auditor" | "resource_server";

/**
 * An agent id: a configured agent's (letters, digits and `_ . @ + -`), or a
 * workload identity's, whose mapped ids add `:` and `/` (`gh:acme/reports`).
 * Whatever names an agent (a rate limit, a filter) takes both.
 */
export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.@+:/-]{0,127}$/;

/**
 * A configured principal's id, and a person's: reviewers, owners and the
 * people an agent acts for (letters, digits and `_ . @ + -`).
 */
export const PERSON_ID = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/;

/** An AI agent, CI job or script that asks for credentials. */
export interface Agent {
  readonly kind: "agent";
  readonly id: string;
  /** The human accountable for the agent; never counts toward its approvals. */
  readonly owner: string;
  /** Extra attributes made available to policies as `principal.<name>`. */
  readonly attributes: Readonly<Record<string, string>>;
  /**
   * The people the agent may name as `on_behalf_of`, when configured. Naming a
   * person keeps them from reviewing the request, so an agent free to name
   * anyone could keep a strict reviewer out of its approval. Absent: any person
   * (unchecked, as before the setting existed); empty: nobody.
   */
  readonly actsFor?: readonly string[];
}

/** A human who approves or denies requests. */
export interface Reviewer {
  readonly kind: "reviewer";
  readonly id: string;
  readonly groups: readonly string[];
  /**
   * The reviewer's email, when configured: another name for the same person,
   * which an agent's owner or `on_behalf_of` may use instead of the id.
   */
  readonly email?: string;
}

/** A member of the security team who reads requests and events. */
export interface Auditor {
  readonly kind: "auditor";
  readonly id: string;
}

/** A service that accepts writ JWTs for one audience and consumes them. */
export interface ResourceServer {
  readonly kind: "resource_server";
  readonly id: string;
  readonly audience: string;
}

export type Principal = Agent | Reviewer | Auditor | ResourceServer;

/** Who did something, as recorded in events. `system` is writ itself (expiry). */
export interface Actor {
  readonly kind: PrincipalKind | "system";
  readonly id: string;
}

export const SYSTEM_ACTOR: Actor = { kind: "system", id: "writ" };

export function actorOf(principal: Principal): Actor {
  return { kind: principal.kind, id: principal.id };
}
