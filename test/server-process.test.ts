import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { after, describe, test } from "node:test";

import { ClientError, createChannel, createClient, Status } from "nice-grpc";

import { GitEventServiceDefinition } from "../src/generated/gitstore/git/v1/events.js";
import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, gitWithInput, SERVER_ENTRY, spawnServer, StreamRecorder } from "./helpers.js";

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

  // The server runs in its own process here: a push run with execFileSync
  // would block an in-process server until the push is over.
  for (const fileNotifications of ["true", "false"]) {
    test(`10,000-tag push is one batch (file notifications ${fileNotifications})`, async () => {
      const bulk = new Fixture();
      bulk.createBare("bulk.git");
      const clone = bulk.createClone("bulk.git");
      git(clone, "push", "-q", "origin", "main");
      const head = git(clone, "rev-parse", "HEAD");
      const names = Array.from({ length: 10_000 }, (_, index) => `refs/tags/bulk-${String(index).padStart(5, "0")}`);
      gitWithInput(clone, names.map((name) => `create ${name} ${head}\n`).join(""), "update-ref", "--stdin");

      const server = await spawnServer([
        "--root",
        bulk.root,
        "--data-dir",
        bulk.dataDir,
        "--listen",
        "127.0.0.1:0",
        "--poll-interval",
        "50",
        "--file-notifications",
        fileNotifications,
      ]);
      const channel = createChannel(`127.0.0.1:${server.port}`);
      const recorder = new StreamRecorder(createClient(GitEventServiceDefinition, channel), { afterSequence: 0 });
      try {
        git(clone, "push", "-q", "origin", "--tags");
        const events = await recorder.waitForEvents(10_000);

        assert.deepEqual(
          events.map((event) => event.refName),
          names,
        );
        assert.ok(events.every((event) => event.type === GitEventType.GIT_EVENT_TYPE_TAG_CREATED));
        assert.equal(new Set(events.map((event) => event.batchId)).size, 1);
        assert.ok(events.every((event) => event.batchSize === 10_000));
        assert.ok(events.every((event, index) => event.batchIndex === index));
        assert.ok(events.every((event, index) => event.sequence === index + 1));
      } finally {
        await recorder.close();
        channel.close();
        server.child.kill("SIGTERM");
        await server.exited;
        bulk.remove();
      }
    });
  }

  test("second server on one data folder fails", async () => {
    const dataDir = path.join(fixture.dir, "shared-data");
    const first = await spawnServer(["--root", fixture.root, "--data-dir", dataDir, "--listen", "127.0.0.1:0"]);
    try {
      const result = await runToExit(["--root", fixture.root, "--data-dir", dataDir, "--listen", "127.0.0.1:0"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`in use by process ${first.child.pid}`));
    } finally {
      first.child.kill("SIGTERM");
      await first.exited;
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
