import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { GitEventType } from "../src/types.js";
import { commit, Fixture, git, startTestService, StreamRecorder, type TestService } from "./helpers.js";

// Ten minutes: within a test, only a file notification can trigger a snapshot.
const NO_POLL_MS = 600_000;

describe("file notifications", () => {
  let fixture: Fixture;
  let server: TestService;
  let clone: string;
  let bare: string;
  let recorder: StreamRecorder;

  before(async () => {
    fixture = new Fixture();
    bare = fixture.createBare("acme/catalog.git");
    clone = fixture.createClone("acme/catalog.git");
    git(clone, "push", "-q", "origin", "main");
    server = await startTestService(fixture, { pollIntervalMs: NO_POLL_MS, fileNotifications: true });
    recorder = new StreamRecorder(server.client, { afterSequence: server.service.store.sequence });
  });

  after(async () => {
    await recorder.close();
    await server.stop();
    fixture.remove();
  });

  test("push is seen before the next poll", async () => {
    const head = commit(clone, "notified");
    git(clone, "push", "-q", "origin", "main");
    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED);
    assert.equal(event!.newOid, head);
  });

  test("branch in a new ref folder is seen", async () => {
    git(clone, "push", "-q", "origin", "main:refs/heads/team/feature/one");
    const events = await recorder.waitForEvents(2);
    assert.equal(events[1]!.refName, "refs/heads/team/feature/one");
    assert.equal(events[1]!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED);
  });

  test("deleting a packed ref is seen", async () => {
    git(bare, "pack-refs", "--all", "--prune");
    git(clone, "push", "-q", "origin", "--delete", "team/feature/one");
    const events = await recorder.waitForEvents(3);
    assert.equal(events[2]!.refName, "refs/heads/team/feature/one");
    assert.equal(events[2]!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED);
  });

  test("HEAD change is seen", async () => {
    git(clone, "push", "-q", "origin", "main:refs/heads/next");
    await recorder.waitForEvents(4);
    git(bare, "symbolic-ref", "HEAD", "refs/heads/next");
    const events = await recorder.waitForEvents(5);
    assert.equal(events[4]!.type, GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED);
    assert.equal(events[4]!.newTarget, "refs/heads/next");
  });
});
