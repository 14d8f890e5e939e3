import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, test } from "node:test";

import { ClientError, Status } from "nice-grpc";

import { GitEventType } from "../src/types.js";
import {
  commit,
  Fixture,
  git,
  startTestService,
  StreamRecorder,
  waitForSequence,
  type TestService,
} from "./helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function newFixture(): Fixture {
  const fixture = new Fixture();
  cleanups.push(() => fixture.remove());
  return fixture;
}

async function start(fixture: Fixture, overrides: Parameters<typeof startTestService>[1] = {}): Promise<TestService> {
  const server = await startTestService(fixture, overrides);
  cleanups.push(() => server.stop());
  return server;
}

function watch(server: TestService, request: ConstructorParameters<typeof StreamRecorder>[1]): StreamRecorder {
  const recorder = new StreamRecorder(server.client, request);
  cleanups.push(() => recorder.close());
  return recorder;
}

/** Pushes `count` commits to main, one push each, and waits until each is committed. */
async function pushCommits(server: TestService, clone: string, count: number, label: string): Promise<string[]> {
  const heads: string[] = [];
  for (let index = 0; index < count; index++) {
    heads.push(commit(clone, `${label} ${index}`));
    git(clone, "push", "-q", "origin", "main");
    await waitForBranchAt(server, "acme/catalog.git", "refs/heads/main", heads.at(-1)!);
  }
  return heads;
}

async function waitForBranchAt(server: TestService, repository: string, ref: string, oid: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (server.service.store.snapshot(repository)?.refs.get(ref) !== oid) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${ref} at ${oid}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function expectStatus(promise: Promise<unknown>, code: Status, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
    assert.equal(Status[error.code], Status[code]);
    for (const fragment of fragments) assert.match(error.details, new RegExp(escape(fragment)));
    return true;
  });
}

async function firstResponse(server: TestService, request: Parameters<TestService["client"]["watch"]>[0]) {
  for await (const response of server.client.watch(request)) return response;
  return undefined;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function setUpRepository(fixture: Fixture): string {
  fixture.createBare("acme/catalog.git");
  const clone = fixture.createClone("acme/catalog.git");
  git(clone, "push", "-q", "origin", "main");
  return clone;
}

describe("resume by cursor", () => {
  test("resume replays after cursor exactly once", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture);
    const heads = await pushCommits(server, clone, 6, "commit");

    const all = watch(server, { afterSequence: 0 });
    const events = await all.waitForEvents(6);
    assert.deepEqual(
      events.map((event) => event.newOid),
      heads,
    );

    const cursor = events[2]!.sequence;
    const resumed = watch(server, { afterSequence: cursor });
    const tail = await resumed.waitForEvents(3);
    assert.deepEqual(
      tail.map((event) => event.sequence),
      [cursor + 1, cursor + 2, cursor + 3],
    );
    assert.equal(tail[0]!.oldOid, events[2]!.newOid);

    const live = await pushCommits(server, clone, 1, "live");
    const after = await resumed.waitForEvents(4);
    assert.equal(after[3]!.newOid, live[0]);
    assert.equal(after[3]!.sequence, cursor + 4);
    assert.equal(resumed.events.length, 4);
  });

  test("idle stream sends heartbeats with sequence", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture, { heartbeatIntervalMs: 200 });
    await pushCommits(server, clone, 1, "commit");

    const recorder = watch(server, { repositories: ["other.git"] });
    await recorder.waitFor("a heartbeat", (r) => r.responses.some((response) => response.response?.$case === "heartbeat"));
    const heartbeat = recorder.responses.find((response) => response.response?.$case === "heartbeat")!;
    assert.equal(heartbeat.response?.$case, "heartbeat");
    assert.equal(heartbeat.response.$case === "heartbeat" && heartbeat.response.value.sequence, server.service.store.sequence);
  });

  test("list-then-watch sends state, marker, live", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    git(clone, "tag", "-a", "v1", "-m", "one");
    git(clone, "push", "-q", "origin", "v1");
    const server = await start(fixture);
    const head = git(clone, "rev-parse", "HEAD");

    const recorder = watch(server, { sendInitialState: true });
    await recorder.waitFor("the initial-state marker", (r) =>
      r.responses.some((response) => response.response?.$case === "initialStateComplete"),
    );
    const initial = recorder.events;
    assert.deepEqual(
      initial.map((event) => [event.refName, event.type, event.initial]),
      [
        ["HEAD", GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED, true],
        ["refs/heads/main", GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED, true],
        ["refs/tags/v1", GitEventType.GIT_EVENT_TYPE_TAG_CREATED, true],
      ],
    );
    assert.equal(initial[0]!.newTarget, "refs/heads/main");
    assert.equal(initial[1]!.newOid, head);
    assert.equal(initial[2]!.peeledOid, head);
    const marker = recorder.responses.find((response) => response.response?.$case === "initialStateComplete")!;
    const markerSequence = marker.response?.$case === "initialStateComplete" ? marker.response.value.sequence : -1;
    assert.equal(markerSequence, server.service.store.sequence);

    const [live] = await pushCommits(server, clone, 1, "live");
    await recorder.waitForEvents(4);
    assert.equal(recorder.events[3]!.newOid, live);
    assert.equal(recorder.events[3]!.initial, false);
    assert.equal(recorder.events[3]!.sequence, markerSequence + 1);
  });

  test("ListRefs is consistent with its sequence", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    git(clone, "tag", "-a", "v1", "-m", "one");
    git(clone, "push", "-q", "origin", "v1");
    const server = await start(fixture);
    const [head] = await pushCommits(server, clone, 1, "second");

    const listing = await server.client.listRefs({ repository: "acme/catalog.git" });
    assert.equal(listing.defaultBranch, "refs/heads/main");
    assert.equal(listing.sequence, server.service.store.sequence);
    assert.deepEqual(
      listing.refs.map((ref) => [ref.name, ref.isDefaultBranch]),
      [
        ["refs/heads/main", true],
        ["refs/tags/v1", false],
      ],
    );
    assert.equal(listing.refs[0]!.oid, head);

    const repositories = await server.client.listRepositories({});
    assert.deepEqual(
      repositories.repositories.map((repository) => [repository.name, repository.refCount]),
      [["acme/catalog.git", 2]],
    );
  });
});

describe("restart", () => {
  test("changes made while down arrive after restart", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    let server = await start(fixture);
    const [first] = await pushCommits(server, clone, 1, "before");
    const cursor = server.service.store.sequence;
    await server.stop();

    const downtimeHead = commit(clone, "while down");
    git(clone, "push", "-q", "origin", "main", "main:refs/heads/made-while-down");
    git(clone, "tag", "v9");
    git(clone, "push", "-q", "origin", "v9");

    server = await start(fixture);
    const recorder = watch(server, { afterSequence: cursor });
    const events = await recorder.waitForEvents(3);
    assert.deepEqual(
      events.map((event) => [event.refName, event.type]),
      [
        ["refs/heads/made-while-down", GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED],
        ["refs/heads/main", GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED],
        ["refs/tags/v9", GitEventType.GIT_EVENT_TYPE_TAG_CREATED],
      ],
    );
    assert.equal(events[1]!.oldOid, first);
    assert.equal(events[1]!.newOid, downtimeHead);
    assert.deepEqual(
      events.map((event) => event.sequence),
      [cursor + 1, cursor + 2, cursor + 3],
    );
  });

  test("sequence continues and old cursors replay", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    let server = await start(fixture);
    await pushCommits(server, clone, 2, "before");
    const beforeRestart = server.service.store.sequence;
    await server.stop();

    server = await start(fixture);
    assert.equal(server.service.store.sequence, beforeRestart);
    const replay = watch(server, { afterSequence: 0 });
    await replay.waitForEvents(2);
    await pushCommits(server, clone, 1, "after");
    const events = await replay.waitForEvents(3);
    assert.deepEqual(
      events.map((event) => event.sequence),
      [1, 2, 3],
    );
  });

  test("long nested repository name survives restart", async () => {
    const fixture = newFixture();
    setUpRepository(fixture);
    let server = await start(fixture);
    const name = `${"a".repeat(200)}/${"b".repeat(200)}.git`;
    fixture.createBare(name);
    await waitForSequence(server.service, 1);
    await server.stop();

    server = await start(fixture);
    assert.equal(server.service.store.snapshot(name)?.head, "refs/heads/main");
  });

  test("lost journal stops the start", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture);
    await pushCommits(server, clone, 2, "before");
    await server.stop();
    rmSync(path.join(fixture.dataDir, "journal"), { recursive: true });

    await assert.rejects(startTestService(fixture), /checkpoint\.json .* is at sequence 2 but the journal ends at 0/);
  });

  test("invalid snapshot file stops the start", async () => {
    const fixture = newFixture();
    setUpRepository(fixture);
    const server = await start(fixture);
    await server.stop();
    const snapshots = path.join(fixture.dataDir, "snapshots");
    const [file] = readdirSync(snapshots);
    writeFileSync(path.join(snapshots, file!), "{}");

    await assert.rejects(startTestService(fixture), (error: unknown) => error instanceof Error && error.message.includes(file!));
  });

  test("missing root with recorded repositories stops the start", async () => {
    const fixture = newFixture();
    setUpRepository(fixture);
    const server = await start(fixture);
    await server.stop();

    const typo = path.join(fixture.dir, "typo-root");
    await assert.rejects(startTestService(fixture, { root: typo }), /typo-root does not exist, but the data folder .* records 1 repositories/);
    assert.equal(existsSync(typo), false);
  });

  test("first start records a silent baseline", async () => {
    const fixture = newFixture();
    setUpRepository(fixture);
    const server = await start(fixture);
    assert.equal(server.service.store.sequence, 0);
    assert.deepEqual([...server.service.store.state().repositories.keys()], ["acme/catalog.git"]);
  });
});

describe("cursor out of range", () => {
  test("expired cursor gets OUT_OF_RANGE with bounds", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture, { retainedEvents: 2 });
    await pushCommits(server, clone, 6, "commit");
    const oldest = server.service.store.oldestSequence;
    assert.ok(oldest > 1, `retention kept everything from ${oldest}`);

    await expectStatus(
      firstResponse(server, { afterSequence: oldest - 2 }),
      Status.OUT_OF_RANGE,
      `cursor ${oldest - 2}`,
      `oldest retained event ${oldest}`,
    );
    const atEdge = watch(server, { afterSequence: oldest - 1 });
    const [event] = await atEdge.waitForEvents(1);
    assert.equal(event!.sequence, oldest);
  });

  test("cursor beyond current sequence is OUT_OF_RANGE", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture);
    await pushCommits(server, clone, 1, "commit");
    const current = server.service.store.sequence;

    await expectStatus(
      firstResponse(server, { afterSequence: current + 5 }),
      Status.OUT_OF_RANGE,
      `cursor ${current + 5}`,
      `current sequence ${current}`,
    );
  });

  test("initial state with cursor is INVALID_ARGUMENT", async () => {
    const fixture = newFixture();
    setUpRepository(fixture);
    const server = await start(fixture);
    await expectStatus(
      firstResponse(server, { afterSequence: 0, sendInitialState: true }),
      Status.INVALID_ARGUMENT,
      "after_sequence 0",
    );
  });
});

describe("filters", () => {
  test("repository, pattern and type filters combine", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    fixture.createBare("other.git");
    const otherClone = fixture.createClone("other.git");
    git(otherClone, "push", "-q", "origin", "main");
    const server = await start(fixture);
    const cursor = server.service.store.sequence;

    const tagsOnly = watch(server, {
      afterSequence: cursor,
      repositories: ["acme/catalog.git"],
      refPatterns: ["refs/tags/v*"],
      eventTypes: [GitEventType.GIT_EVENT_TYPE_TAG_CREATED],
    });
    const everything = watch(server, { afterSequence: cursor });

    git(otherClone, "tag", "v1");
    git(otherClone, "push", "-q", "origin", "v1");
    git(clone, "tag", "nightly");
    git(clone, "push", "-q", "origin", "nightly", "main:refs/heads/feature");
    git(clone, "tag", "v1.2.0");
    git(clone, "push", "-q", "origin", "v1.2.0");
    // Wait between create and delete: one poll would see no net change.
    await everything.waitForEvents(4);
    git(clone, "push", "-q", "origin", ":refs/tags/v1.2.0");
    await everything.waitForEvents(5);
    await waitForSequence(server.service, cursor + 5);
    // The marker is the last matching event; nothing else may precede it.
    git(clone, "tag", "v2.0.0");
    git(clone, "push", "-q", "origin", "v2.0.0");
    const events = await tagsOnly.waitForEvents(2);
    assert.deepEqual(
      events.map((event) => [event.repository, event.refName]),
      [
        ["acme/catalog.git", "refs/tags/v1.2.0"],
        ["acme/catalog.git", "refs/tags/v2.0.0"],
      ],
    );
  });

  test("many watchers receive the same events", async () => {
    const fixture = newFixture();
    const clone = setUpRepository(fixture);
    const server = await start(fixture);
    const cursor = server.service.store.sequence;
    const recorders = Array.from({ length: 5 }, () => watch(server, { afterSequence: cursor }));

    const heads = await pushCommits(server, clone, 3, "fan-out");
    for (const recorder of recorders) {
      const events = await recorder.waitForEvents(3);
      assert.deepEqual(
        events.map((event) => event.newOid),
        heads,
      );
    }
  });
});
