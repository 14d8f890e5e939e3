import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";

import { ClientError, createChannel, createClient, Status } from "nice-grpc";

import { GitEventServiceDefinition } from "../src/generated/gitstore/git/v1/events.js";
import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, StreamRecorder, WAIT_MS } from "./helpers.js";

const SERVER_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "server.js");

/** A server process with its stderr log lines parsed as JSON. */
interface ServerProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  port: number;
  exited: Promise<number | null>;
}

async function spawnServer(args: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_ENTRY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const logs: Record<string, unknown>[] = [];
  let buffer = "";

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${WAIT_MS} ms: ${buffer}`)), WAIT_MS);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        const record = JSON.parse(line) as Record<string, unknown>;
        logs.push(record);
        if (record.message === "server started") {
          clearTimeout(timer);
          resolve(Number(String(record.listen).split(":").at(-1)));
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it started: ${buffer}`));
    });
  });
  return { child, logs, port, exited };
}

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
