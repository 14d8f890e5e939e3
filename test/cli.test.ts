import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";

import { commit, Fixture, git, spawnServer, WAIT_MS, type ServerProcess } from "./helpers.js";

const CLI_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "cli.js");

/** The watch command as a child process, with its output collected. */
class WatchCommand {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  stdout = "";
  stderr = "";

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI_ENTRY, ...args]);
    this.exited = once(this.child, "exit").then(([code]) => code as number | null);
    this.child.stdout.on("data", (chunk) => (this.stdout += chunk));
    this.child.stderr.on("data", (chunk) => (this.stderr += chunk));
  }

  /** Waits until `pattern` appears in `stream`, failing after WAIT_MS with the output so far. */
  async waitFor(stream: "stdout" | "stderr", pattern: RegExp): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!pattern.test(this[stream])) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${pattern} on ${stream}; stdout: ${this.stdout}; stderr: ${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

async function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const command = new WatchCommand(args);
  return { code: await command.exited, stderr: command.stderr };
}

describe("watch command", () => {
  const fixture = new Fixture();
  after(() => fixture.remove());

  test("prints decisions and survives a restart", async () => {
    fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    git(clone, "push", "-q", "origin", "main");
    const serverArgs = (listen: string) => ["--root", fixture.root, "--data-dir", fixture.dataDir, "--listen", listen, "--poll-interval", "50"];

    let server: ServerProcess = await spawnServer(serverArgs("127.0.0.1:0"));
    const port = server.port;
    const watch = new WatchCommand(["watch", "--server", `127.0.0.1:${port}`, "--after", "0"]);
    try {
      const main = commit(clone, "second");
      git(clone, "push", "-q", "origin", "main");
      await watch.waitFor("stdout", /refs\/heads\/main BRANCH_UPDATED/);
      assert.match(watch.stdout, new RegExp(`#1 acme/catalog\\.git refs/heads/main BRANCH_UPDATED [0-9a-f]{12}\\.\\.${main.slice(0, 12)} => hydrate_latest ${main.slice(0, 12)}`));

      server.child.kill("SIGKILL");
      await server.exited;
      await watch.waitFor("stderr", /reconnecting to 127\.0\.0\.1:\d+ in \d+ ms \(attempt 1, resuming after 1\)/);

      git(clone, "tag", "-a", "v2.0.0", "-m", "release");
      git(clone, "push", "-q", "origin", "v2.0.0");
      server = await spawnServer(serverArgs(`127.0.0.1:${port}`));
      await watch.waitFor("stdout", /refs\/tags\/v2\.0\.0 TAG_CREATED/);
      assert.match(watch.stdout, new RegExp(`#2 acme/catalog\\.git refs/tags/v2\\.0\\.0 TAG_CREATED .* => promote_live ${main.slice(0, 12)}`));
      assert.equal(watch.stdout.trim().split("\n").length, 2);

      watch.child.kill("SIGINT");
      assert.equal(await watch.exited, 0);
    } finally {
      watch.child.kill("SIGKILL");
      server.child.kill("SIGKILL");
    }
  });

  test("invalid type exits 2 naming it", async () => {
    const result = await runToExit(["watch", "--type", "TAG_EXPLODED"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--type has invalid value "TAG_EXPLODED"/);
    assert.match(result.stderr, /TAG_CREATED/);
  });

  test("invalid cursor exits 2 naming it", async () => {
    const result = await runToExit(["watch", "--after", "-3"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--after/);
  });

  test("unknown command exits 2", async () => {
    const result = await runToExit(["tail"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown command "tail"/);
  });

  test("invalid release pattern exits 2", async () => {
    const result = await runToExit(["watch", "--release-tags", "[z-a]"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /release tag pattern "\[z-a\]"/);
  });

  test("server rejection exits 1 with the status", async () => {
    const server = await spawnServer(["--root", fixture.root, "--data-dir", path.join(fixture.dir, "other-data"), "--listen", "127.0.0.1:0"]);
    try {
      const result = await runToExit(["watch", "--server", `127.0.0.1:${server.port}`, "--ref", "heads/*"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /INVALID_ARGUMENT/);
      assert.match(result.stderr, /"heads\/\*"/);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
