import type { CredentialType, Timing } from "../domain/request.js";
import type { AuditLog } from "../ports/audit-log.js";
import type { Clock } from "../ports/clock.js";
import type { IdentityDirectory } from "../ports/identity.js";
import type { Logger } from "../ports/logger.js";
import type { Minter, TokenVerifier } from "../ports/minter.js";
import type { Notifier } from "../ports/notifier.js";
import type { PolicyEngine } from "../ports/policy.js";
import type { RequestStore } from "../ports/store.js";

/** Everything the use cases consume: ports only, no adapters. */
export interface BrokerDeps {
  readonly store: RequestStore;
  readonly auditLog: AuditLog;
  readonly policy: PolicyEngine;
  readonly identities: IdentityDirectory;
  readonly minters: Partial<Record<CredentialType, Minter>>;
  readonly verifier: TokenVerifier;
  readonly notifiers: readonly Notifier[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly timing: Timing;
}
