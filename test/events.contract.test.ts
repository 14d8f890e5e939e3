import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { afterEach, describe, test } from "node:test";

import { GitEventType, ObjectFormat, ObjectType, RefKind } from "../src/types.js";
import {
  commit,
  Fixture,
  git,
  startTestService,
  StreamRecorder,
  type TestService,
} from "./helpers.js";

const ZERO = "0".repeat(40);

interface Setup {
  fixture: Fixture;
  server: TestService;
  clone: string;
  bare: string;
  recorder: StreamRecorder;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/**
 * Creates acme/catalog.git with main pushed, starts the service on it and
 * opens a watch from the current sequence, so no push is missed.
 */
async function setUp(options: { objectFormat?: "sha1" | "sha256" } = {}): Promise<Setup> {
  const fixture = new Fixture();
  cleanups.push(() => fixture.remove());
  const bare = fixture.createBare("acme/catalog.git", options);
  const clone = fixture.createClone("acme/catalog.git", options);
  git(clone, "push", "-q", "origin", "main");

  const server = await startTestService(fixture);
  cleanups.push(() => server.stop());
  const recorder = new StreamRecorder(server.client, { afterSequence: server.service.store.sequence });
  cleanups.push(() => recorder.close());
  return { fixture, server, clone, bare, recorder };
}

describe("branch events", () => {
  test("push of a new branch is BRANCH_CREATED", async () => {
    const { clone, recorder } = await setUp();
    git(clone, "checkout", "-q", "-b", "feature");
    const head = commit(clone, "feature work");
    git(clone, "push", "-q", "origin", "feature");

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED);
    assert.equal(event!.repository, "acme/catalog.git");
    assert.equal(event!.refName, "refs/heads/feature");
    assert.equal(event!.refKind, RefKind.REF_KIND_BRANCH);
    assert.equal(event!.oldOid, ZERO);
    assert.equal(event!.newOid, head);
    assert.equal(event!.objectType, ObjectType.OBJECT_TYPE_COMMIT);
    assert.equal(event!.peeledOid, head);
    assert.equal(event!.isDefaultBranch, false);
    assert.equal(event!.objectFormat, ObjectFormat.OBJECT_FORMAT_SHA1);
    assert.ok(event!.sequence > 0);
    assert.notEqual(event!.batchId, "");
    assert.equal(event!.batchSize, 1);
    assert.ok(event!.observedAt instanceof Date);
    assert.equal(event!.initial, false);
  });

  test("fast-forward push is BRANCH_UPDATED", async () => {
    const { clone, recorder } = await setUp();
    const before = git(clone, "rev-parse", "HEAD");
    const after = commit(clone, "second");
    git(clone, "push", "-q", "origin", "main");

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED);
    assert.equal(event!.refName, "refs/heads/main");
    assert.equal(event!.oldOid, before);
    assert.equal(event!.newOid, after);
    assert.equal(event!.isDefaultBranch, true);
  });

  test("force push is BRANCH_FORCE_UPDATED", async () => {
    const { clone, recorder } = await setUp();
    const before = git(clone, "rev-parse", "HEAD");
    git(clone, "commit", "-q", "--amend", "-m", "rewritten");
    const after = git(clone, "rev-parse", "HEAD");
    git(clone, "push", "-q", "--force", "origin", "main");

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED);
    assert.equal(event!.oldOid, before);
    assert.equal(event!.newOid, after);
  });

  test("push moving a branch back is BRANCH_FORCE_UPDATED", async () => {
    const { clone, recorder } = await setUp();
    const first = git(clone, "rev-parse", "HEAD");
    const second = commit(clone, "second");
    git(clone, "push", "-q", "origin", "main");
    await recorder.waitForEvents(1);

    git(clone, "push", "-q", "--force", "origin", `${first}:refs/heads/main`);
    const events = await recorder.waitForEvents(2);
    assert.equal(events[1]!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED);
    assert.equal(events[1]!.oldOid, second);
    assert.equal(events[1]!.newOid, first);
  });

  test("deleting a branch is BRANCH_DELETED", async () => {
    const { clone, recorder } = await setUp();
    const head = git(clone, "rev-parse", "HEAD");
    git(clone, "push", "-q", "origin", "main:refs/heads/old");
    await recorder.waitForEvents(1);

    git(clone, "push", "-q", "origin", "--delete", "old");
    const events = await recorder.waitForEvents(2);
    assert.equal(events[1]!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED);
    assert.equal(events[1]!.refName, "refs/heads/old");
    assert.equal(events[1]!.oldOid, head);
    assert.equal(events[1]!.newOid, ZERO);
    assert.equal(events[1]!.objectType, ObjectType.OBJECT_TYPE_UNSPECIFIED);
    assert.equal(events[1]!.peeledOid, "");
  });
});

describe("tag events", () => {
  test("annotated tag is TAG_CREATED, peeled", async () => {
    const { clone, recorder } = await setUp();
    const head = git(clone, "rev-parse", "HEAD");
    git(clone, "tag", "-a", "v1.0.0", "-m", "release 1.0.0");
    const tagObject = git(clone, "rev-parse", "v1.0.0");
    git(clone, "push", "-q", "origin", "v1.0.0");

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_TAG_CREATED);
    assert.equal(event!.refName, "refs/tags/v1.0.0");
    assert.equal(event!.refKind, RefKind.REF_KIND_TAG);
    assert.equal(event!.newOid, tagObject);
    assert.notEqual(tagObject, head);
    assert.equal(event!.objectType, ObjectType.OBJECT_TYPE_TAG);
    assert.equal(event!.peeledOid, head);
  });

  test("lightweight tag is TAG_CREATED on a commit", async () => {
    const { clone, recorder } = await setUp();
    const head = git(clone, "rev-parse", "HEAD");
    git(clone, "tag", "light");
    git(clone, "push", "-q", "origin", "light");

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.type, GitEventType.GIT_EVENT_TYPE_TAG_CREATED);
    assert.equal(event!.newOid, head);
    assert.equal(event!.objectType, ObjectType.OBJECT_TYPE_COMMIT);
    assert.equal(event!.peeledOid, head);
  });

  test("tag pointing at a tree reports the tree type", async () => {
    const { clone, recorder } = await setUp();
    const tree = git(clone, "rev-parse", "HEAD^{tree}");
    git(clone, "push", "-q", "origin", `${tree}:refs/tags/tree-tag`);

    const [event] = await recorder.waitForEvents(1);
    assert.equal(event!.objectType, ObjectType.OBJECT_TYPE_TREE);
    assert.equal(event!.peeledOid, tree);
  });

  test("forced tag push is TAG_MOVED", async () => {
    const { clone, recorder } = await setUp();
    const first = git(clone, "rev-parse", "HEAD");
    git(clone, "tag", "v2");
    git(clone, "push", "-q", "origin", "v2");
    await recorder.waitForEvents(1);

    const second = commit(clone, "fix");
    git(clone, "tag", "-f", "v2");
    git(clone, "push", "-q", "--force", "origin", "v2");
    const events = await recorder.waitForEvents(2);
    assert.equal(events[1]!.type, GitEventType.GIT_EVENT_TYPE_TAG_MOVED);
    assert.equal(events[1]!.oldOid, first);
    assert.equal(events[1]!.newOid, second);
  });

  test("deleting a tag is TAG_DELETED", async () => {
    const { clone, recorder } = await setUp();
    git(clone, "tag", "-a", "v3", "-m", "three");
    const tagObject = git(clone, "rev-parse", "v3");
    git(clone, "push", "-q", "origin", "v3");
    await recorder.waitForEvents(1);

    git(clone, "push", "-q", "origin", ":refs/tags/v3");
    const events = await recorder.waitForEvents(2);
    assert.equal(events[1]!.type, GitEventType.GIT_EVENT_TYPE_TAG_DELETED);
    assert.equal(events[1]!.oldOid, tagObject);
    assert.equal(events[1]!.newOid, ZERO);
  });
});

describe("default branch and other refs", () => {
  test("changing HEAD is DEFAULT_BRANCH_CHANGED", async () => {
    const { clone, bare, recorder } = await setUp();
    const main = git(clone, "rev-parse", "HEAD");
    git(clone, "checkout", "-q", "-b", "develop");
    const develop = commit(clone, "develop work");
    git(clone, "push", "-q", "origin", "develop");
    await recorder.waitForEvents(1);

    git(bare, "symbolic-ref", "HEAD", "refs/heads/develop");
    const events = await recorder.waitForEvents(2);
    const event = events[1]!;
    assert.equal(event.type, GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED);
    assert.equal(event.refName, "HEAD");
    assert.equal(event.refKind, RefKind.REF_KIND_HEAD);
    assert.equal(event.oldTarget, "refs/heads/main");
    assert.equal(event.newTarget, "refs/heads/develop");
    assert.equal(event.oldOid, main);
    assert.equal(event.newOid, develop);

    const next = commit(clone, "more develop work");
    git(clone, "push", "-q", "origin", "develop");
    const [, , update] = await recorder.waitForEvents(3);
    assert.equal(update!.newOid, next);
    assert.equal(update!.isDefaultBranch, true);
  });

  test("notes are REF_CREATED, REF_UPDATED, REF_DELETED", async () => {
    const { clone, recorder } = await setUp();
    git(clone, "notes", "add", "-m", "reviewed");
    const firstNotes = git(clone, "rev-parse", "refs/notes/commits");
    git(clone, "push", "-q", "origin", "refs/notes/commits");
    git(clone, "notes", "append", "-m", "approved");
    const secondNotes = git(clone, "rev-parse", "refs/notes/commits");

    const [created] = await recorder.waitForEvents(1);
    assert.equal(created!.type, GitEventType.GIT_EVENT_TYPE_REF_CREATED);
    assert.equal(created!.refName, "refs/notes/commits");
    assert.equal(created!.refKind, RefKind.REF_KIND_NOTE);
    assert.equal(created!.newOid, firstNotes);

    git(clone, "push", "-q", "origin", "refs/notes/commits");
    const [, updated] = await recorder.waitForEvents(2);
    assert.equal(updated!.type, GitEventType.GIT_EVENT_TYPE_REF_UPDATED);
    assert.equal(updated!.oldOid, firstNotes);
    assert.equal(updated!.newOid, secondNotes);

    git(clone, "push", "-q", "origin", ":refs/notes/commits");
    const [, , deleted] = await recorder.waitForEvents(3);
    assert.equal(deleted!.type, GitEventType.GIT_EVENT_TYPE_REF_DELETED);
    assert.equal(deleted!.newOid, ZERO);
  });

  test("replace and other refs carry their kind", async () => {
    const { clone, recorder } = await setUp();
    const first = git(clone, "rev-parse", "HEAD");
    const second = commit(clone, "second");
    git(clone, "replace", first, second);
    git(clone, "push", "-q", "origin", `refs/replace/${first}`);
    const [replace] = await recorder.waitForEvents(1);
    assert.equal(replace!.type, GitEventType.GIT_EVENT_TYPE_REF_CREATED);
    assert.equal(replace!.refKind, RefKind.REF_KIND_REPLACE);

    git(clone, "push", "-q", "origin", "HEAD:refs/pull/1/head");
    const [, other] = await recorder.waitForEvents(2);
    assert.equal(other!.type, GitEventType.GIT_EVENT_TYPE_REF_CREATED);
    assert.equal(other!.refName, "refs/pull/1/head");
    assert.equal(other!.refKind, RefKind.REF_KIND_OTHER);
  });
});

describe("repository events", () => {
  test("new repository is REPOSITORY_CREATED", async () => {
    const { fixture, recorder } = await setUp();
    fixture.createBare("acme/new.git");
    const [created] = await recorder.waitForEvents(1);
    assert.equal(created!.type, GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED);
    assert.equal(created!.repository, "acme/new.git");
    assert.equal(created!.refName, "");
    assert.equal(created!.newTarget, "refs/heads/main");

    const clone = fixture.createClone("acme/new.git");
    git(clone, "push", "-q", "origin", "main");
    const [, branch] = await recorder.waitForEvents(2);
    assert.equal(branch!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED);
    assert.equal(branch!.repository, "acme/new.git");
    assert.equal(branch!.isDefaultBranch, true);
  });

  test("removed repository deletes refs, then itself", async () => {
    const { bare, clone, recorder } = await setUp();
    const head = git(clone, "rev-parse", "HEAD");
    rmSync(bare, { recursive: true, force: true });

    const [branch, repository] = await recorder.waitForEvents(2);
    assert.equal(branch!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED);
    assert.equal(branch!.oldOid, head);
    assert.equal(repository!.type, GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED);
    assert.equal(repository!.repository, "acme/catalog.git");
    assert.equal(repository!.oldTarget, "refs/heads/main");
    assert.equal(branch!.batchId, repository!.batchId);
    assert.equal(repository!.sequence, branch!.sequence + 1);
  });
});

describe("object formats and bulk changes", () => {
  test("SHA-256 repository uses 64-digit ids", async () => {
    const { clone, recorder } = await setUp({ objectFormat: "sha256" });
    const before = git(clone, "rev-parse", "HEAD");
    const after = commit(clone, "second");
    git(clone, "push", "-q", "origin", "main");
    git(clone, "push", "-q", "origin", "main:refs/heads/topic");

    const [updated, created] = await recorder.waitForEvents(2);
    assert.equal(before.length, 64);
    assert.equal(updated!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED);
    assert.equal(updated!.oldOid, before);
    assert.equal(updated!.newOid, after);
    assert.equal(updated!.objectFormat, ObjectFormat.OBJECT_FORMAT_SHA256);
    assert.equal(created!.oldOid, "0".repeat(64));
  });

  test("pack-refs and gc produce no event", async () => {
    const { clone, bare, recorder } = await setUp();
    git(clone, "tag", "-a", "v1", "-m", "one");
    git(clone, "push", "-q", "origin", "v1", "main:refs/heads/a", "main:refs/heads/b");
    await recorder.waitForEvents(3);

    git(bare, "pack-refs", "--all", "--prune");
    git(bare, "gc", "-q", "--prune=now");
    // A later push is the marker: nothing may arrive before it.
    git(clone, "push", "-q", "origin", "main:refs/heads/marker");
    const events = await recorder.waitForEvents(4);
    assert.equal(events[3]!.refName, "refs/heads/marker");
    assert.equal(events[3]!.type, GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED);
  });
});
