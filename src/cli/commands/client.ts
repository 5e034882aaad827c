import type { Command } from "../command.js";

/** Commands that talk to a running writ over its HTTP API. */
export const clientCommands: readonly Command[] = [];
