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
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    style: detectStyle(process.stdout),
    env: process.env,
    interrupted,
  };
}

process.exitCode = await runCli(process.argv.slice(2), processIo());
