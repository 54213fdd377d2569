#!/usr/bin/env node
import type { CliIo } from "./_command.js";
import { detectStyle } from "./_style.js";
import { runCli } from "./run-cli.js";

function processIo(): CliIo {
  let interrupt: () => void = () => undefined;
  const interrupted = new Promise<void>((resolve) => {
    interrupt = resolve;
  });
  process.once("SIGINT", () => interrupt());
  let closed = false;
  let close: () => void = () => undefined;
  const outputClosed = new Promise<void>((resolve) => {
    close = resolve;
  });
  // A reader that went away (a closed pipe) is not an error: the command stops printing, and
  // ends as it would, with its own exit code.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    closed = true;
    close();
  });
  return {
    stdout: (text) => {
      if (!closed) process.stdout.write(text);
    },
    stderr: (text) => process.stderr.write(text),
    style: detectStyle(process.stdout),
    env: process.env,
    interrupted,
    outputClosed,
  };
}

process.exitCode = await runCli(process.argv.slice(2), processIo());
