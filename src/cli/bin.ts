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

runCli(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`writ: ${(error as Error).message}\n`);
    process.exitCode = EXIT.failed;
  },
);
