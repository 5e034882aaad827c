import type { Command } from "../../command.js";
import { auditExportCommand } from "./export.js";
import { auditShowCommand } from "./show.js";
import { auditTailCommand } from "./tail.js";
import { auditVerifyCommand } from "./verify.js";

/** `writ audit …`: the security team's commands. */
export const auditCommands: readonly Command[] = [
  auditVerifyCommand,
  auditTailCommand,
  auditExportCommand,
  auditShowCommand,
];
