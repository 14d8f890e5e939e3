import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { GitEvent, GitEventType, ObjectFormat, ObjectType, RefKind } from "../src/generated/gitstore/git/v1/events.js";
import { createRouter, DEFAULT_RELEASE_TAG_PATTERN, type Decision } from "../src/router.js";
import { InvalidRequestError } from "../src/watch-filter.js";

const REPOSITORY = "acme/catalog.git";
const ZERO_SHA1 = "0".repeat(40);
const ZERO_SHA256 = "0".repeat(64);
const OLD_COMMIT = "a".repeat(40);
const NEW_COMMIT = "b".repeat(40);
const TREE = "e".repeat(40);
/** Object id of an annotated tag object, which peels to NEW_COMMIT. */
const TAG_OBJECT = "c".repeat(40);
const OLD_TAG_OBJECT = "d".repeat(40);
const NEW_COMMIT_SHA256 = "f".repeat(64);

/** Returns a branch event of REPOSITORY that points to NEW_COMMIT, with `fields` overriding. */
function branchEvent(type: GitEventType, refName: string, fields: Partial<GitEvent> = {}): GitEvent {
  const deleted = type === GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED;
  return GitEvent.fromPartial({
    repository: REPOSITORY,
    refName,
    type,
    refKind: RefKind.REF_KIND_BRANCH,
    objectFormat: ObjectFormat.OBJECT_FORMAT_SHA1,
    oldOid: type === GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED ? ZERO_SHA1 : OLD_COMMIT,
    newOid: deleted ? ZERO_SHA1 : NEW_COMMIT,
    objectType: deleted ? ObjectType.OBJECT_TYPE_UNSPECIFIED : ObjectType.OBJECT_TYPE_COMMIT,
    peeledOid: deleted ? "" : NEW_COMMIT,
    ...fields,
  });
}

/** Returns an annotated-tag event of REPOSITORY whose tag object TAG_OBJECT peels to NEW_COMMIT, with `fields` overriding. */
function tagEvent(type: GitEventType, refName: string, fields: Partial<GitEvent> = {}): GitEvent {
  const deleted = type === GitEventType.GIT_EVENT_TYPE_TAG_DELETED;
  return GitEvent.fromPartial({
    repository: REPOSITORY,
    refName,
    type,
    refKind: RefKind.REF_KIND_TAG,
    objectFormat: ObjectFormat.OBJECT_FORMAT_SHA1,
    oldOid: type === GitEventType.GIT_EVENT_TYPE_TAG_CREATED ? ZERO_SHA1 : OLD_TAG_OBJECT,
    newOid: deleted ? ZERO_SHA1 : TAG_OBJECT,
    objectType: deleted ? ObjectType.OBJECT_TYPE_UNSPECIFIED : ObjectType.OBJECT_TYPE_TAG,
    peeledOid: deleted ? "" : NEW_COMMIT,
    ...fields,
  });
}

/** Returns a DEFAULT_BRANCH_CHANGED event from refs/heads/master to refs/heads/main, with `fields` overriding. */
function headEvent(fields: Partial<GitEvent> = {}): GitEvent {
  return GitEvent.fromPartial({
    repository: REPOSITORY,
    refName: "HEAD",
    type: GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED,
    refKind: RefKind.REF_KIND_HEAD,
    objectFormat: ObjectFormat.OBJECT_FORMAT_SHA1,
    oldTarget: "refs/heads/master",
    newTarget: "refs/heads/main",
    oldOid: OLD_COMMIT,
    newOid: NEW_COMMIT,
    objectType: ObjectType.OBJECT_TYPE_COMMIT,
    peeledOid: NEW_COMMIT,
    ...fields,
  });
}

/** Returns an event of a ref outside refs/heads/ and refs/tags/, such as a note. */
function otherRefEvent(type: GitEventType, refName: string, refKind: RefKind): GitEvent {
  const deleted = type === GitEventType.GIT_EVENT_TYPE_REF_DELETED;
  return GitEvent.fromPartial({
    repository: REPOSITORY,
    refName,
    type,
    refKind,
    objectFormat: ObjectFormat.OBJECT_FORMAT_SHA1,
    oldOid: type === GitEventType.GIT_EVENT_TYPE_REF_CREATED ? ZERO_SHA1 : OLD_COMMIT,
    newOid: deleted ? ZERO_SHA1 : NEW_COMMIT,
    objectType: deleted ? ObjectType.OBJECT_TYPE_UNSPECIFIED : ObjectType.OBJECT_TYPE_COMMIT,
    peeledOid: deleted ? "" : NEW_COMMIT,
  });
}

function repositoryEvent(type: GitEventType): GitEvent {
  return GitEvent.fromPartial({
    repository: REPOSITORY,
    refName: "",
    type,
    objectFormat: ObjectFormat.OBJECT_FORMAT_SHA1,
    oldOid: ZERO_SHA1,
    newOid: ZERO_SHA1,
  });
}

function ignoreDecision(ref: string, reason: string): Decision {
  return { action: "ignore", repository: REPOSITORY, ref, reason };
}

interface RouteCase {
  name: string;
  event: GitEvent;
  expected: Decision;
}

const NOT_A_COMMIT = "the branch does not point to a commit";
const NOT_RELEASE = "not a release tag";
const OTHER_REF = "notes, replace and other refs do not change the catalogue";

/** Decisions of the default router (release tags "v*") for every GitEventType value. */
const ROUTE_CASES: RouteCase[] = [
  {
    name: "unspecified type is ignored",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_UNSPECIFIED, "refs/heads/main", { isDefaultBranch: true }),
    expected: ignoreDecision("refs/heads/main", "unknown event type 0"),
  },
  {
    name: "unrecognized type is ignored",
    event: branchEvent(GitEventType.UNRECOGNIZED, "refs/heads/main", { isDefaultBranch: true }),
    expected: ignoreDecision("refs/heads/main", "unknown event type -1"),
  },

  {
    name: "default branch created hydrates latest",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED, "refs/heads/main", { isDefaultBranch: true }),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT },
  },
  {
    name: "default branch updated hydrates latest",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED, "refs/heads/main", { isDefaultBranch: true }),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT },
  },
  {
    name: "default branch force-updated hydrates latest",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED, "refs/heads/main", { isDefaultBranch: true }),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT },
  },
  {
    name: "default branch SHA-256 hydrates latest",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED, "refs/heads/main", {
      isDefaultBranch: true,
      objectFormat: ObjectFormat.OBJECT_FORMAT_SHA256,
      oldOid: "1".repeat(64),
      newOid: NEW_COMMIT_SHA256,
      peeledOid: NEW_COMMIT_SHA256,
    }),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT_SHA256 },
  },
  {
    name: "other branch created hydrates draft",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED, "refs/heads/feature/search"),
    expected: { action: "hydrate_draft", repository: REPOSITORY, ref: "refs/heads/feature/search", commit: NEW_COMMIT },
  },
  {
    name: "other branch updated hydrates draft",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED, "refs/heads/feature/search"),
    expected: { action: "hydrate_draft", repository: REPOSITORY, ref: "refs/heads/feature/search", commit: NEW_COMMIT },
  },
  {
    name: "other branch force-updated hydrates draft",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED, "refs/heads/feature/search"),
    expected: { action: "hydrate_draft", repository: REPOSITORY, ref: "refs/heads/feature/search", commit: NEW_COMMIT },
  },
  {
    name: "default branch tree is ignored",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED, "refs/heads/main", {
      isDefaultBranch: true,
      newOid: TREE,
      objectType: ObjectType.OBJECT_TYPE_TREE,
      peeledOid: TREE,
    }),
    expected: ignoreDecision("refs/heads/main", NOT_A_COMMIT),
  },
  {
    name: "other branch tree is ignored",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED, "refs/heads/trees", {
      newOid: TREE,
      objectType: ObjectType.OBJECT_TYPE_TREE,
      peeledOid: TREE,
    }),
    expected: ignoreDecision("refs/heads/trees", NOT_A_COMMIT),
  },
  {
    name: "default branch deleted retracts",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED, "refs/heads/main", { isDefaultBranch: true }),
    expected: { action: "retract", repository: REPOSITORY, ref: "refs/heads/main" },
  },
  {
    name: "other branch deleted retracts",
    event: branchEvent(GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED, "refs/heads/feature/search"),
    expected: { action: "retract", repository: REPOSITORY, ref: "refs/heads/feature/search" },
  },

  {
    name: "default branch change hydrates latest",
    event: headEvent(),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT },
  },
  {
    name: "SHA-256 default branch change hydrates",
    event: headEvent({
      objectFormat: ObjectFormat.OBJECT_FORMAT_SHA256,
      oldOid: "1".repeat(64),
      newOid: NEW_COMMIT_SHA256,
      peeledOid: NEW_COMMIT_SHA256,
    }),
    expected: { action: "hydrate_latest", repository: REPOSITORY, ref: "refs/heads/main", commit: NEW_COMMIT_SHA256 },
  },
  {
    name: "detached HEAD is ignored",
    event: headEvent({ newTarget: "" }),
    expected: ignoreDecision("HEAD", "HEAD is detached"),
  },
  {
    name: "unborn SHA-1 default branch ignored",
    event: headEvent({ newOid: ZERO_SHA1, objectType: ObjectType.OBJECT_TYPE_UNSPECIFIED, peeledOid: "" }),
    expected: ignoreDecision("HEAD", "the new default branch refs/heads/main has no commit yet"),
  },
  {
    name: "unborn SHA-256 default branch ignored",
    event: headEvent({
      objectFormat: ObjectFormat.OBJECT_FORMAT_SHA256,
      oldOid: "1".repeat(64),
      newOid: ZERO_SHA256,
      objectType: ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: "",
    }),
    expected: ignoreDecision("HEAD", "the new default branch refs/heads/main has no commit yet"),
  },
  {
    name: "default branch to tree ignored",
    event: headEvent({ newOid: TREE, objectType: ObjectType.OBJECT_TYPE_TREE, peeledOid: TREE }),
    expected: ignoreDecision("HEAD", "the new default branch refs/heads/main does not point to a commit"),
  },

  {
    name: "release tag created promotes live",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/v1.2.3"),
    expected: { action: "promote_live", repository: REPOSITORY, ref: "refs/tags/v1.2.3", commit: NEW_COMMIT },
  },
  {
    name: "release tag moved promotes live",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_MOVED, "refs/tags/v1.2.3"),
    expected: { action: "promote_live", repository: REPOSITORY, ref: "refs/tags/v1.2.3", commit: NEW_COMMIT },
  },
  {
    name: "lightweight release tag promotes live",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/v2.0.0", {
      newOid: NEW_COMMIT,
      objectType: ObjectType.OBJECT_TYPE_COMMIT,
    }),
    expected: { action: "promote_live", repository: REPOSITORY, ref: "refs/tags/v2.0.0", commit: NEW_COMMIT },
  },
  {
    name: "release tag without object ignored",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/v1.2.3", {
      objectType: ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: "",
    }),
    expected: ignoreDecision("refs/tags/v1.2.3", "the tag points to a missing object"),
  },
  {
    name: "non-release tag created ignored",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/nightly"),
    expected: ignoreDecision("refs/tags/nightly", NOT_RELEASE),
  },
  {
    name: "non-release tag moved ignored",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_MOVED, "refs/tags/nightly"),
    expected: ignoreDecision("refs/tags/nightly", NOT_RELEASE),
  },
  {
    name: "release tag deleted retracts",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_DELETED, "refs/tags/v1.2.3"),
    expected: { action: "retract", repository: REPOSITORY, ref: "refs/tags/v1.2.3" },
  },
  {
    name: "non-release tag deleted ignored",
    event: tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_DELETED, "refs/tags/nightly"),
    expected: ignoreDecision("refs/tags/nightly", NOT_RELEASE),
  },

  {
    name: "notes ref created ignored",
    event: otherRefEvent(GitEventType.GIT_EVENT_TYPE_REF_CREATED, "refs/notes/commits", RefKind.REF_KIND_NOTE),
    expected: ignoreDecision("refs/notes/commits", OTHER_REF),
  },
  {
    name: "replace ref updated ignored",
    event: otherRefEvent(GitEventType.GIT_EVENT_TYPE_REF_UPDATED, `refs/replace/${OLD_COMMIT}`, RefKind.REF_KIND_REPLACE),
    expected: ignoreDecision(`refs/replace/${OLD_COMMIT}`, OTHER_REF),
  },
  {
    name: "other ref deleted ignored",
    event: otherRefEvent(GitEventType.GIT_EVENT_TYPE_REF_DELETED, "refs/pull/1/head", RefKind.REF_KIND_OTHER),
    expected: ignoreDecision("refs/pull/1/head", OTHER_REF),
  },

  {
    name: "repository created ignored",
    event: repositoryEvent(GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED),
    expected: ignoreDecision("", "the branch and tag events of the new repository follow"),
  },
  {
    name: "repository deleted ignored",
    event: repositoryEvent(GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED),
    expected: ignoreDecision("", "the deleted events of its branches and tags came first"),
  },
];

describe("createRouter default pattern", () => {
  const route = createRouter();

  for (const { name, event, expected } of ROUTE_CASES) {
    test(name, () => {
      assert.deepEqual(route(event), expected);
    });
  }

  test("table covers every event type", () => {
    const coveredTypes = new Set(ROUTE_CASES.map((routeCase) => routeCase.event.type));
    const allTypes = Object.values(GitEventType).filter((value): value is GitEventType => typeof value === "number");

    assert.equal(allTypes.length, 15);
    for (const type of allTypes) {
      assert.ok(coveredTypes.has(type), `no case for GitEventType ${GitEventType[type]}`);
    }
  });

  // ts-proto decodes an enum number it does not know, such as a type added by
  // a newer server, as that number, so the router can receive one.
  test("future type number is ignored", () => {
    const event = branchEvent(99 as GitEventType, "refs/heads/main", { isDefaultBranch: true });

    assert.deepEqual(route(event), ignoreDecision("refs/heads/main", "unknown event type 99"));
  });

  test("default pattern is v*", () => {
    assert.equal(DEFAULT_RELEASE_TAG_PATTERN, "v*");
  });

  test("empty config equals no config", () => {
    const withEmptyConfig = createRouter({});
    const tags = ["refs/tags/v1.2.3", "refs/tags/nightly", "refs/tags/release-1"];

    for (const refName of tags) {
      const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, refName);
      assert.deepEqual(withEmptyConfig(event), route(event), refName);
    }
  });
});

describe("createRouter custom pattern", () => {
  test("release-* promotes matching tag", () => {
    const route = createRouter({ releaseTagPattern: "release-*" });
    const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/release-2026.1");

    assert.deepEqual(route(event), {
      action: "promote_live",
      repository: REPOSITORY,
      ref: "refs/tags/release-2026.1",
      commit: NEW_COMMIT,
    });
  });

  test("release-* ignores v tags", () => {
    const route = createRouter({ releaseTagPattern: "release-*" });
    const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/v1.2.3");

    assert.deepEqual(route(event), ignoreDecision("refs/tags/v1.2.3", NOT_RELEASE));
  });

  test("release-* retracts deleted tag", () => {
    const route = createRouter({ releaseTagPattern: "release-*" });
    const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_DELETED, "refs/tags/release-2026.1");

    assert.deepEqual(route(event), { action: "retract", repository: REPOSITORY, ref: "refs/tags/release-2026.1" });
  });

  test("releases/* matches nested tags", () => {
    const route = createRouter({ releaseTagPattern: "releases/*" });
    const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_MOVED, "refs/tags/releases/2026/1");

    assert.deepEqual(route(event), {
      action: "promote_live",
      repository: REPOSITORY,
      ref: "refs/tags/releases/2026/1",
      commit: NEW_COMMIT,
    });
  });

  test("releases/* ignores sibling prefix", () => {
    const route = createRouter({ releaseTagPattern: "releases/*" });
    const event = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/releases-2026");

    assert.deepEqual(route(event), ignoreDecision("refs/tags/releases-2026", NOT_RELEASE));
  });

  for (const pattern of ["[z-a]", "[abc"]) {
    test(`invalid pattern ${pattern} throws`, () => {
      let caught: unknown;
      try {
        createRouter({ releaseTagPattern: pattern });
      } catch (error) {
        caught = error;
      }

      assert.ok(caught instanceof InvalidRequestError, `expected InvalidRequestError, got ${String(caught)}`);
      assert.ok(caught.message.includes(pattern), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(pattern)}`);
    });
  }
});

describe("createRouter purity", () => {
  test("same event gives equal decisions", () => {
    const route = createRouter();

    for (const { name, event } of ROUTE_CASES) {
      assert.deepEqual(route(event), route(event), name);
    }
  });

  test("routing leaves events unchanged", () => {
    const route = createRouter();

    for (const { name, event } of ROUTE_CASES) {
      const before = structuredClone(event);
      route(event);
      assert.deepEqual(event, before, name);
    }
  });

  test("earlier events do not leak", () => {
    const route = createRouter();
    const releaseEvent = tagEvent(GitEventType.GIT_EVENT_TYPE_TAG_CREATED, "refs/tags/v1.2.3");
    const firstDecision = route(releaseEvent);

    for (const { event } of ROUTE_CASES) route(event);

    assert.deepEqual(route(releaseEvent), firstDecision);
  });
});
