import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";

import { watchEvents } from "../src/client.js";
import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, runtimeCommand, spawnServer, startTestService, WAIT_MS } from "./helpers.js";

const CLI_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "cli.js");

describe("Deno 2 and Node from the same build", () => {
  const fixture = new Fixture();
  after(() => fixture.remove());
  fixture.createBare("acme/catalog.git");
  const clone = fixture.createClone("acme/catalog.git");
  git(clone, "push", "-q", "origin", "main");

  test("Deno server streams to Node client", async () => {
    const server = await spawnServer(
      // The idle heartbeat makes the server run a few seconds before the
      // push: signal handling once broke only after the first seconds.
      ["--root", fixture.root, "--data-dir", path.join(fixture.dir, "deno-data"), "--listen", "127.0.0.1:0", "--poll-interval", "50", "--heartbeat-interval", "2500"],
      "deno",
    );
    const abort = new AbortController();
    try {
      const head = commit(clone, "for deno server");
      let pushed = false;
      let heartbeats = 0;
      for await (const item of watchEvents(`127.0.0.1:${server.port}`, { signal: AbortSignal.any([abort.signal, AbortSignal.timeout(WAIT_MS)]) })) {
        // The first heartbeat comes at once, the second after an idle interval.
        if (item.type === "heartbeat" && ++heartbeats === 2 && !pushed) {
          git(clone, "push", "-q", "origin", "main");
          pushed = true;
        }
        if (item.type !== "event") continue;
        assert.equal(item.event.type, GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED);
        assert.equal(item.event.newOid, head);
        break;
      }
      assert.equal(pushed, true);
      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
      assert.ok(server.logs.some((record) => record.message === "server stopped"));
    } finally {
      abort.abort();
      server.child.kill("SIGKILL");
    }
  });

  test("Node server streams to Deno client", async () => {
    const server = await startTestService(fixture);
    const cursor = server.service.store.sequence;
    const [command, args] = runtimeCommand("deno", CLI_ENTRY, ["watch", "--server", `127.0.0.1:${server.service.port}`, "--after", String(cursor), "--json"]);
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const exited = once(child, "exit");
    try {
      let stdout = "";
      let stderr = "";
      child.stderr.on("data", (chunk) => (stderr += chunk));
      const firstLine = new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event from the Deno client within ${WAIT_MS} ms; stderr: ${stderr}`)), WAIT_MS);
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
          if (stdout.includes("\n")) {
            clearTimeout(timer);
            resolve(stdout.split("\n")[0]!);
          }
        });
      });

      const head = commit(clone, "for deno client");
      git(clone, "push", "-q", "origin", "main");
      const line = JSON.parse(await firstLine) as { event: { newOid: string; type: string }; decision: { action: string } };
      assert.equal(line.event.type, "GIT_EVENT_TYPE_BRANCH_UPDATED");
      assert.equal(line.event.newOid, head);
      assert.equal(line.decision.action, "hydrate_latest");

      child.kill("SIGINT");
      const [code] = await exited;
      assert.equal(code, 0);
    } finally {
      child.kill("SIGKILL");
      await server.stop();
    }
  });
});
