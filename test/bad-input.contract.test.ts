import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { ClientError, Status } from "nice-grpc";

import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, startTestService, StreamRecorder, type TestService } from "./helpers.js";

let fixture: Fixture;
let server: TestService;
let clone: string;

before(async () => {
  fixture = new Fixture();
  fixture.createBare("acme/catalog.git");
  clone = fixture.createClone("acme/catalog.git");
  git(clone, "push", "-q", "origin", "main");
  server = await startTestService(fixture);
});

after(async () => {
  await server.stop();
  fixture.remove();
});

async function watchError(request: Parameters<TestService["client"]["watch"]>[0]): Promise<ClientError> {
  try {
    for await (const response of server.client.watch(request)) {
      assert.fail(`expected an error, got ${JSON.stringify(response)}`);
    }
  } catch (error) {
    assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
    return error;
  }
  assert.fail("the stream ended without an error");
}

describe("invalid watch requests", () => {
  const invalidRepositories = ["../outside.git", "/etc", "acme/../../x.git", "acme//catalog.git", "./acme", "a\\b.git", ""];
  for (const name of invalidRepositories) {
    test(`repository ${JSON.stringify(name)} is INVALID_ARGUMENT`, async () => {
      const error = await watchError({ repositories: [name] });
      assert.equal(Status[error.code], "INVALID_ARGUMENT");
      assert.ok(error.details.includes(JSON.stringify(name)), error.details);
    });
  }

  const invalidPatterns = ["heads/*", "refs/tags/[v", "", "refs/heads/a b"];
  for (const pattern of invalidPatterns) {
    test(`pattern ${JSON.stringify(pattern)} is INVALID_ARGUMENT`, async () => {
      const error = await watchError({ refPatterns: ["refs/heads/*", pattern] });
      assert.equal(Status[error.code], "INVALID_ARGUMENT");
      assert.ok(error.details.includes(JSON.stringify(pattern)), error.details);
    });
  }

  for (const type of [0, 99]) {
    test(`event type ${type} is INVALID_ARGUMENT`, async () => {
      const error = await watchError({ eventTypes: [GitEventType.GIT_EVENT_TYPE_TAG_CREATED, type] });
      assert.equal(Status[error.code], "INVALID_ARGUMENT");
      assert.match(error.details, new RegExp(`event type ${type}`));
    });
  }
});

describe("invalid ListRefs requests", () => {
  test("name leaving the root is INVALID_ARGUMENT", async () => {
    await assert.rejects(server.client.listRefs({ repository: "../../etc/passwd" }), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(Status[error.code], "INVALID_ARGUMENT");
      assert.match(error.details, /"\.\.\/\.\.\/etc\/passwd"/);
      return true;
    });
  });

  test("unknown repository is NOT_FOUND", async () => {
    await assert.rejects(server.client.listRefs({ repository: "missing.git" }), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(Status[error.code], "NOT_FOUND");
      assert.match(error.details, /"missing\.git"/);
      return true;
    });
  });
});

describe("folders that are not repositories", () => {
  test("broken folders are logged and skipped", async () => {
    mkdirSync(path.join(fixture.root, "empty.git"));
    mkdirSync(path.join(fixture.root, "half.git"));
    writeFileSync(path.join(fixture.root, "half.git", "HEAD"), "ref: refs/heads/main\n");
    // Looks like a repository to the layout check, but git rejects its HEAD.
    const corrupt = path.join(fixture.root, "corrupt.git");
    mkdirSync(path.join(corrupt, "objects"), { recursive: true });
    mkdirSync(path.join(corrupt, "refs"), { recursive: true });
    writeFileSync(path.join(corrupt, "HEAD"), "not a ref\n");
    // Repositories whose refs would lead git outside the root.
    const outside = fixture.createBare("../outside.git");
    const linked = path.join(fixture.root, "linked.git");
    mkdirSync(path.join(linked, "objects"), { recursive: true });
    writeFileSync(path.join(linked, "HEAD"), "ref: refs/heads/main\n");
    symlinkSync(path.join(outside, "refs"), path.join(linked, "refs"));
    const common = fixture.createBare("common.git");
    writeFileSync(path.join(common, "commondir"), `${outside}\n`);
    // A name that no watcher could ask for.
    fixture.createBare("bad\u001bname.git");

    const cursor = server.service.store.sequence;
    const recorder = new StreamRecorder(server.client, { afterSequence: cursor });
    try {
      const head = commit(clone, "after broken folders");
      git(clone, "push", "-q", "origin", "main");
      const [event] = await recorder.waitForEvents(1);
      assert.equal(event!.repository, "acme/catalog.git");
      assert.equal(event!.newOid, head);
    } finally {
      await recorder.close();
    }

    const warned = (name: string) =>
      server.logger.records.filter((record) => record.level === "warn" && record.fields.repository === name);
    // A poll whose discovery ran before the folders existed can report the
    // push first, so wait for the warnings, then for one more poll.
    const deadline = Date.now() + 15_000;
    while (warned("bad\u001bname.git").length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const polled = server.service.store.sequence;
    git(clone, "push", "-q", "origin", "main:refs/heads/after-warnings");
    while (server.service.store.sequence === polled && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));

    assert.equal(warned("empty.git").length, 1);
    assert.equal(warned("half.git").length, 1);
    assert.equal(warned("corrupt.git").length, 1);
    for (const name of ["linked.git", "common.git", "bad\u001bname.git"]) {
      assert.equal(warned(name).length, 1, `${JSON.stringify(name)} was not skipped once`);
      assert.equal(server.service.store.snapshot(name), undefined);
    }
    assert.equal(server.service.store.snapshot("corrupt.git"), undefined);
  });

  test("server still serves after bad requests", async () => {
    const listing = await server.client.listRefs({ repository: "acme/catalog.git" });
    assert.ok(listing.refs.some((ref) => ref.name === "refs/heads/main"));
  });
});
