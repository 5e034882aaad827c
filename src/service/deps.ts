import type { CredentialType, Timing } from "../domain/request.js";
import type { AuditLog } from "../ports/audit-log.js";
import type { Clock } from "../ports/clock.js";
import type { IdentityDirectory } from "../ports/identity.js";
import type { Logger } from "../ports/logger.js";
import type { Minter, TokenReader } from "../ports/minter.js";
import type { Notifier } from "../ports/notifier.js";
import type { PolicyEngine } from "../ports/policy.js";
import type { RateLimiter } from "../ports/rate-limiter.js";
import type { CredentialRevoker } from "../ports/revoker.js";
import type { RequestStore } from "../ports/store.js";
import type { Timer } from "../ports/timer.js";
import type { RecentRequests } from "./recent-requests.js";
import type { WaitLimit } from "./wait-limit.js";

/** Everything the use cases consume: ports only, no adapters. */
export interface BrokerDeps {
  readonly store: RequestStore;
  readonly auditLog: AuditLog;
  readonly policy: PolicyEngine;
  readonly identities: IdentityDirectory;
  readonly minters: Partial<Record<CredentialType, Minter>>;
  /**
   * Revokers for credentials that must be ended at their source when an agent
   * completes, a reviewer revokes or writ expires them (AWS sessions); none for JWTs.
   */
  readonly revokers?: Partial<Record<CredentialType, CredentialRevoker>>;
  readonly tokens: TokenReader;
  readonly notifiers: readonly Notifier[];
  readonly clock: Clock;
  /** Waits between background retries (ending expired credentials at their source). */
  readonly timer?: Timer;
  readonly logger: Logger;
  readonly timing: Timing;
  /** Limits how often each agent may ask (`rate_limited`); none means unlimited. */
  readonly rateLimiter?: RateLimiter;
  /**
   * Limits how often each resource server may consume (`rate_limited`): a used
   * or ended token presented again is recorded each time, so a resource server
   * retrying one in a loop would otherwise grow the record without bound.
   */
  readonly consumeRateLimiter?: RateLimiter;
  /**
   * What this process last committed for recent requests: a change that follows
   * one of its own skips a store read (see `transact`). None: always read.
   */
  readonly recent?: RecentRequests;
  /** Caps each principal's concurrent long-polls (`too_many_waits`); none means no cap. */
  readonly waitLimit?: WaitLimit;
  /**
   * Aborted when the process begins to shut down: long-polls answer at once with
   * the current state, so in-flight requests drain within the grace period, and
   * background retries stop waiting.
   */
  readonly stopping?: AbortSignal;
}
