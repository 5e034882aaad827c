import { approverGroups, requiredQuorum } from "../domain/decision.js";
import type { Notifier } from "../ports/notifier.js";

/**
 * Prints a line for people watching `writ dev` when a request needs them. Only
 * ids, names and the CLI command to act: never context values or secrets.
 */
export function createConsoleNotifier(write: (line: string) => void): Notifier {
  return {
    name: "console",
    async notify(request, events) {
      for (const event of events) {
        if (event.type === "request.decided" && request.decision.effect === "approve") {
          const groups = approverGroups(request.decision).join(", ");
          write(
            `→ ${request.id}: ${request.agentId} asks for ${request.action} on ${request.resource}; needs ${requiredQuorum(request.decision)} approval(s) from ${groups}. Approve: writ approve ${request.id}`,
          );
        } else if (
          event.type === "request.approved" ||
          event.type === "request.denied" ||
          event.type === "request.expired"
        ) {
          write(`→ ${request.id}: ${event.type.split(".")[1]}`);
        } else if (event.type === "token.replay_blocked") {
          write(`→ ${request.id}: replay of a used token blocked`);
        }
      }
    },
  };
}
