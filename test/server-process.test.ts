import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { after, describe, test } from "node:test";

import { ClientError, createChannel, createClient, Status } from "nice-grpc";

import { GitEventServiceDefinition } from "../src/generated/gitstore/git/v1/events.js";
import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, SERVER_ENTRY, spawnServer, StreamRecorder } from "./helpers.js";

async function runToExit(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [SERVER_ENTRY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  child.stdout.on("data", (chunk) => (stdout += chunk));
  const [code] = await once(child, "exit");
  return { code: code as number | null, stderr, stdout };
}

describe("server process", () => {
  const fixture = new Fixture();
  after(() => fixture.remove());

  test("serves a push, then stops on SIGTERM", async () => {
    fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    git(clone, "push", "-q", "origin", "main");

    const server = await spawnServer([
      "--root",
      fixture.root,
      "--data-dir",
      fixture.dataDir,
      "--listen",
      "127.0.0.1:0",
      "--poll-interval",
      "50",
    ]);
    const channel = createChannel(`127.0.0.1:${server.port}`);
    const client = createClient(GitEventServiceDefinition, channel);
    const recorder = new StreamRecorder(client, { afterSequence: 0 });
    try {
      const head = commit(clone, "second");
      git(clone, "push", "-q", "origin", "main");
      const [event] = await recorder.waitForEvents(1);
      assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED);
      assert.equal(event!.newOid, head);

      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
      await recorder.waitFor("the stream to end", (r) => r.ended);
      assert.ok(recorder.error instanceof ClientError, String(recorder.error));
      assert.equal(Status[(recorder.error as ClientError).code], "UNAVAILABLE");
      const messages = server.logs.map((record) => record.message);
      assert.ok(messages.includes("signal received"));
      assert.ok(messages.includes("server stopped"));
    } finally {
      await recorder.close();
      channel.close();
      server.child.kill("SIGKILL");
    }
  });

  test("invalid flag value exits 2 naming it", async () => {
    const result = await runToExit(["--poll-interval", "soon"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--poll-interval/);
    assert.match(result.stderr, /"soon"/);
  });

  test("unknown flag exits 2", async () => {
    const result = await runToExit(["--rooot", "/tmp"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--rooot/);
  });

  test("--help prints every flag", async () => {
    const result = await runToExit(["--help"]);
    assert.equal(result.code, 0);
    for (const flag of ["--root", "--data-dir", "--listen", "--poll-interval", "--heartbeat-interval", "--retained-events"]) {
      assert.ok(result.stdout.includes(flag), `usage lacks ${flag}`);
    }
  });

  test("port in use fails with the address", async () => {
    const first = await spawnServer(["--root", fixture.root, "--data-dir", path.join(fixture.dir, "d1"), "--listen", "127.0.0.1:0"]);
    try {
      const result = await runToExit([
        "--root",
        fixture.root,
        "--data-dir",
        path.join(fixture.dir, "d2"),
        "--listen",
        `127.0.0.1:${first.port}`,
      ]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${first.port}`));
    } finally {
      first.child.kill("SIGTERM");
      await first.exited;
    }
  });
});
