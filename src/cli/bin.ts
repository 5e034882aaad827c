#!/usr/bin/env node
import type { CommandIo } from "./command.js";
import { EXIT } from "./command.js";
import { runCli } from "./main.js";

const io: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  stderrIsTty: Boolean(process.stderr.isTTY),
};

// A reader that goes away (`writ audit export | head -1`) ends the command,
// not with a crash: it stops at once, so nothing runs on after output it could
// not deliver (`audit tail --group` acknowledges only what it printed), and
// exits 1 as for any other failure, without a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") {
    process.stderr.write(`writ: cannot write to stdout (${error.code ?? error.message})\n`);
  }
  process.exit(EXIT.failed);
});

runCli(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`writ: ${(error as Error).message}\n`);
    process.exitCode = EXIT.failed;
  },
);
