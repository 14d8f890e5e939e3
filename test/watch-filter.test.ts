import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { GitEvent, GitEventType } from "../src/generated/gitstore/git/v1/events.js";
import {
  InvalidRequestError,
  compileRefPattern,
  compileWatchFilter,
  validateRepositoryName,
} from "../src/watch-filter.js";

/** Asserts that `action` throws an InvalidRequestError whose message contains every fragment. */
function assertInvalidRequest(action: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof InvalidRequestError, `expected InvalidRequestError, got ${String(caught)}`);
  assert.equal(caught.name, "InvalidRequestError");
  for (const fragment of fragments) {
    assert.ok(caught.message.includes(fragment), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(fragment)}`);
  }
}

function matchesRef(pattern: string, refName: string): boolean {
  return compileRefPattern(pattern).test(refName);
}

function filterOf(request: { repositories?: string[]; refPatterns?: string[]; eventTypes?: number[] }) {
  return compileWatchFilter({
    repositories: request.repositories ?? [],
    refPatterns: request.refPatterns ?? [],
    eventTypes: request.eventTypes ?? [],
  });
}

describe("compileRefPattern", () => {
  test("exact name matches itself", () => {
    assert.equal(matchesRef("refs/heads/main", "refs/heads/main"), true);
    assert.equal(matchesRef("refs/heads/main", "refs/heads/maine"), false);
    assert.equal(matchesRef("refs/heads/main", "refs/heads/mai"), false);
    assert.equal(matchesRef("refs/heads/main", "xrefs/heads/main"), false);
  });

  test("prefix matches refs below it", () => {
    assert.equal(matchesRef("refs/tags", "refs/tags/v1"), true);
    assert.equal(matchesRef("refs/tags", "refs/tags/release/v1"), true);
    assert.equal(matchesRef("refs/tags", "refs/tags"), true);
    assert.equal(matchesRef("refs/tags", "refs/tagsx"), false);
    assert.equal(matchesRef("refs/tags", "refs/tagsx/v1"), false);
    assert.equal(matchesRef("refs/tags", "refs/heads/tags"), false);
  });

  test("trailing slash matches refs below", () => {
    assert.equal(matchesRef("refs/tags/", "refs/tags/v1"), true);
    assert.equal(matchesRef("refs/tags/", "refs/tags/release/v1"), true);
    assert.equal(matchesRef("refs/tags/", "refs/tags"), false);
    assert.equal(matchesRef("refs/tags/", "refs/tagsx"), false);
  });

  test("star matches across slashes", () => {
    assert.equal(matchesRef("refs/heads/*", "refs/heads/main"), true);
    assert.equal(matchesRef("refs/heads/*", "refs/heads/feature/login"), true);
    assert.equal(matchesRef("refs/heads/*", "refs/heads/"), true);
    assert.equal(matchesRef("refs/heads/*", "refs/tags/v1"), false);
    assert.equal(matchesRef("refs/*/release", "refs/heads/team/release"), true);
    assert.equal(matchesRef("refs/*/release", "refs/heads/team/release/1"), false);
  });

  test("glob has no prefix match", () => {
    assert.equal(matchesRef("refs/tags/v?", "refs/tags/v1"), true);
    assert.equal(matchesRef("refs/tags/v?", "refs/tags/v1/notes"), false);
  });

  test("question mark matches one character", () => {
    assert.equal(matchesRef("refs/tags/v?", "refs/tags/v1"), true);
    assert.equal(matchesRef("refs/tags/v?", "refs/tags/v"), false);
    assert.equal(matchesRef("refs/tags/v?", "refs/tags/v10"), false);
    assert.equal(matchesRef("refs/tags/a?b", "refs/tags/a/b"), true);
  });

  test("character range matches digits", () => {
    assert.equal(matchesRef("refs/tags/v[0-9]", "refs/tags/v7"), true);
    assert.equal(matchesRef("refs/tags/v[0-9]", "refs/tags/vx"), false);
    assert.equal(matchesRef("refs/tags/v[0-9]", "refs/tags/v12"), false);
    assert.equal(matchesRef("refs/tags/v[0-9]*", "refs/tags/v12.3"), true);
  });

  test("negated class excludes characters", () => {
    assert.equal(matchesRef("refs/heads/[!a]", "refs/heads/b"), true);
    assert.equal(matchesRef("refs/heads/[!a]", "refs/heads/a"), false);
    assert.equal(matchesRef("refs/heads/[^a]", "refs/heads/b"), true);
    assert.equal(matchesRef("refs/heads/[^a]", "refs/heads/a"), false);
    assert.equal(matchesRef("refs/heads/[!a-c]x", "refs/heads/dx"), true);
    assert.equal(matchesRef("refs/heads/[!a-c]x", "refs/heads/bx"), false);
  });

  test("class keeps leading bracket literal", () => {
    assert.equal(matchesRef("refs/heads/[]a]", "refs/heads/]"), true);
    assert.equal(matchesRef("refs/heads/[]a]", "refs/heads/a"), true);
    assert.equal(matchesRef("refs/heads/[]a]", "refs/heads/b"), false);
  });

  test("backslash escapes glob characters", () => {
    assert.equal(matchesRef("refs/heads/a\\*b", "refs/heads/a*b"), true);
    assert.equal(matchesRef("refs/heads/a\\*b", "refs/heads/axyb"), false);
    assert.equal(matchesRef("refs/heads/a\\?", "refs/heads/a?"), true);
    assert.equal(matchesRef("refs/heads/a\\?", "refs/heads/ab"), false);
    assert.equal(matchesRef("refs/heads/\\[x]", "refs/heads/[x]"), true);
    assert.equal(matchesRef("refs/heads/\\[x]", "refs/heads/x"), false);
  });

  test("regex characters match literally", () => {
    assert.equal(matchesRef("refs/tags/v1.0", "refs/tags/v1.0"), true);
    assert.equal(matchesRef("refs/tags/v1.0", "refs/tags/v1x0"), false);
    assert.equal(matchesRef("refs/heads/a+b", "refs/heads/a+b"), true);
    assert.equal(matchesRef("refs/heads/a+b", "refs/heads/aab"), false);
    assert.equal(matchesRef("refs/heads/(x)|y", "refs/heads/(x)|y"), true);
    assert.equal(matchesRef("refs/heads/(x)|y", "y"), false);
  });

  test("empty pattern is rejected", () => {
    assertInvalidRequest(() => compileRefPattern(""), '""', "empty");
  });

  test("pattern outside refs is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("heads/main"), '"heads/main"', '"refs/"');
    assertInvalidRequest(() => compileRefPattern("HEAD"), '"HEAD"', '"refs/"');
    assertInvalidRequest(() => compileRefPattern("refs"), '"refs"', '"refs/"');
  });

  test("space in pattern is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("refs/heads/my branch"), '"refs/heads/my branch"', "space");
  });

  test("control character is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("refs/heads/a\u0001"), JSON.stringify("refs/heads/a\u0001"), "control character");
    assertInvalidRequest(() => compileRefPattern("refs/heads/a\tb"), JSON.stringify("refs/heads/a\tb"), "control character");
    assertInvalidRequest(() => compileRefPattern("refs/heads/a\u007f"), JSON.stringify("refs/heads/a\u007f"), "control character");
  });

  test("unclosed bracket is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("refs/heads/[ab"), '"refs/heads/[ab"', "position 12", "never closed");
  });

  test("empty negated class is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("refs/heads/[!]"), '"refs/heads/[!]"', "position 12", "empty");
  });

  test("trailing backslash is rejected", () => {
    assertInvalidRequest(() => compileRefPattern("refs/heads/a\\"), JSON.stringify("refs/heads/a\\"), "ends with a backslash");
  });

  test("overlong pattern is rejected", () => {
    const pattern = "refs/heads/" + "a".repeat(4096);
    assertInvalidRequest(() => compileRefPattern(pattern), "longer than 4096 characters");
  });

  test("pattern at length limit is accepted", () => {
    const pattern = "refs/heads/" + "a".repeat(4096 - "refs/heads/".length);
    assert.equal(pattern.length, 4096);
    assert.equal(matchesRef(pattern, pattern), true);
  });

  test(
    "reversed range is rejected",
    () => {
      assertInvalidRequest(() => compileRefPattern("refs/heads/[z-a]"), '"refs/heads/[z-a]"');
    },
  );
});

describe("validateRepositoryName", () => {
  test("nested name is accepted", () => {
    assert.doesNotThrow(() => validateRepositoryName("acme/catalog.git"));
    assert.doesNotThrow(() => validateRepositoryName("catalog.git"));
    assert.doesNotThrow(() => validateRepositoryName("a/b/c/d.git"));
    assert.doesNotThrow(() => validateRepositoryName("..hidden/.x.git"));
  });

  const invalidNames: ReadonlyArray<{ name: string; reason: string }> = [
    { name: "", reason: "empty" },
    { name: "/abs", reason: "absolute path" },
    { name: "../x", reason: '".." segment' },
    { name: "a/../b", reason: '".." segment' },
    { name: "a/..", reason: '".." segment' },
    { name: "a//b", reason: "empty path segment" },
    { name: "a/", reason: "empty path segment" },
    { name: "./a", reason: '"." segment' },
    { name: "a\\b", reason: "backslash" },
    { name: "a\u0000b", reason: "control character" },
    { name: "a\nb", reason: "control character" },
    { name: "a\u007fb", reason: "control character" },
  ];
  for (const { name, reason } of invalidNames) {
    test(`name ${JSON.stringify(name)} is rejected`, () => {
      assertInvalidRequest(() => validateRepositoryName(name), `invalid repository name ${JSON.stringify(name)}`, reason);
    });
  }

  test("overlong name is rejected", () => {
    const name = "a".repeat(4097);
    // The message quotes the first 200 characters only.
    assertInvalidRequest(() => validateRepositoryName(name), JSON.stringify(`${name.slice(0, 200)}...`), "longer than 4096 characters");
  });

  test("name at length limit is accepted", () => {
    assert.doesNotThrow(() => validateRepositoryName("a".repeat(4096)));
  });
});

describe("compileWatchFilter", () => {
  const branchEvent = GitEvent.fromPartial({
    sequence: 1,
    repository: "acme/catalog.git",
    refName: "refs/heads/main",
    type: GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED,
  });
  const tagEvent = GitEvent.fromPartial({
    sequence: 2,
    repository: "acme/catalog.git",
    refName: "refs/tags/v1",
    type: GitEventType.GIT_EVENT_TYPE_TAG_CREATED,
  });
  const otherRepositoryEvent = GitEvent.fromPartial({
    sequence: 3,
    repository: "acme/billing.git",
    refName: "refs/heads/main",
    type: GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED,
  });

  test("empty filter matches everything", () => {
    const filter = filterOf({});
    assert.equal(filter.matches(branchEvent), true);
    assert.equal(filter.matches(tagEvent), true);
    assert.equal(filter.matches(otherRepositoryEvent), true);
    assert.equal(filter.includesRepository("any/name.git"), true);
  });

  test("repository filter selects repositories", () => {
    const filter = filterOf({ repositories: ["acme/catalog.git"] });
    assert.equal(filter.matches(branchEvent), true);
    assert.equal(filter.matches(otherRepositoryEvent), false);
    assert.equal(filter.includesRepository("acme/catalog.git"), true);
    assert.equal(filter.includesRepository("acme/billing.git"), false);
    assert.equal(filter.includesRepository("acme"), false);
  });

  test("type filter selects event types", () => {
    const filter = filterOf({ eventTypes: [GitEventType.GIT_EVENT_TYPE_TAG_CREATED] });
    assert.equal(filter.matches(tagEvent), true);
    assert.equal(filter.matches(branchEvent), false);
  });

  test("pattern filter selects refs", () => {
    const filter = filterOf({ refPatterns: ["refs/tags"] });
    assert.equal(filter.matches(tagEvent), true);
    assert.equal(filter.matches(branchEvent), false);
  });

  test("any pattern may match", () => {
    const filter = filterOf({ refPatterns: ["refs/tags/x*", "refs/heads/ma?n"] });
    assert.equal(filter.matches(branchEvent), true);
    assert.equal(filter.matches(tagEvent), false);
  });

  test("all filters must match", () => {
    const filter = filterOf({
      repositories: ["acme/catalog.git"],
      refPatterns: ["refs/heads/*"],
      eventTypes: [GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED],
    });
    assert.equal(filter.matches(branchEvent), true);
    assert.equal(filter.matches(otherRepositoryEvent), false);
    assert.equal(filter.matches(tagEvent), false);
    const branchCreated = GitEvent.fromPartial({ ...branchEvent, type: GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED });
    assert.equal(filter.matches(branchCreated), false);
  });

  test("patterns skip repository-level events", () => {
    const filter = filterOf({ refPatterns: ["refs/tags/*"] });
    const defaultBranchChanged = GitEvent.fromPartial({
      repository: "acme/catalog.git",
      refName: "HEAD",
      type: GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED,
      oldTarget: "refs/heads/master",
      newTarget: "refs/heads/main",
    });
    const repositoryCreated = GitEvent.fromPartial({
      repository: "acme/catalog.git",
      refName: "",
      type: GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED,
    });
    const repositoryDeleted = GitEvent.fromPartial({
      repository: "acme/catalog.git",
      refName: "",
      type: GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED,
    });
    assert.equal(filter.matches(defaultBranchChanged), true);
    assert.equal(filter.matches(repositoryCreated), true);
    assert.equal(filter.matches(repositoryDeleted), true);
    assert.equal(filter.matches(branchEvent), false);
  });

  test("repository filter applies to repository-level events", () => {
    const filter = filterOf({ repositories: ["acme/billing.git"], refPatterns: ["refs/tags/*"] });
    const repositoryCreated = GitEvent.fromPartial({
      repository: "acme/catalog.git",
      type: GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED,
    });
    assert.equal(filter.matches(repositoryCreated), false);
  });

  test("type filter applies to repository-level events", () => {
    const filter = filterOf({ eventTypes: [GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED] });
    const repositoryDeleted = GitEvent.fromPartial({
      repository: "acme/catalog.git",
      type: GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED,
    });
    assert.equal(filter.matches(repositoryDeleted), false);
    assert.equal(filter.matches(branchEvent), true);
  });

  test("known event types are accepted", () => {
    const allTypes = Array.from({ length: 13 }, (_, index) => index + 1);
    const filter = filterOf({ eventTypes: allTypes });
    assert.equal(filter.matches(branchEvent), true);
    assert.equal(filter.matches(tagEvent), true);
  });

  for (const type of [0, 99, -1, 14, 1.5]) {
    test(`event type ${type} is rejected`, () => {
      assertInvalidRequest(() => filterOf({ eventTypes: [type] }), `invalid event type ${type}:`, "13");
    });
  }

  test("invalid repository is rejected", () => {
    assertInvalidRequest(() => filterOf({ repositories: ["acme/catalog.git", "../etc"] }), '"../etc"');
  });

  test("invalid pattern is rejected", () => {
    assertInvalidRequest(() => filterOf({ refPatterns: ["refs/heads/*", "heads/main"] }), '"heads/main"');
  });
});

describe("pattern matching cost", () => {
  // A backtracking regular expression needs minutes for this input; the
  // timeout turns such a stall into a failure.
  test("many stars stay fast", { timeout: 5_000 }, () => {
    const pattern = compileRefPattern("refs/*a*a*a*a*a*a*a*a*a*a*a*a*b");
    const refName = "refs/heads/" + "a".repeat(4_000);
    assert.equal(pattern.test(refName), false);
    assert.equal(pattern.test(refName + "b"), true);
  });

  test("overlong value is cut in message", () => {
    const name = "x/".repeat(3_000) + "y.git";
    assert.throws(
      () => validateRepositoryName(name),
      (error: unknown) => error instanceof InvalidRequestError && error.message.length < 500,
    );
  });
});
