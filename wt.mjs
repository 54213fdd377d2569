import { Worker } from "node:worker_threads";

const w = new Worker(
  `require("tsx/cjs/api").register(); console.log("registered"); require("/work/main/src/store/store-worker.ts"); console.log("loaded");`,
  { eval: true, workerData: { locks: new SharedArrayBuffer(256) } },
);
w.on("error", (e) => console.log("ERR", e.message));
w.on("exit", (c) => console.log("exit", c));
