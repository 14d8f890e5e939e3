import { GitEventType, KNOWN_EVENT_TYPES, type GitEvent } from "./types.js";

/** A request value that is invalid; the message names the value and the fix. */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidRequestError";
  }
}

/** The filters of a WatchRequest, checked and compiled. */
export interface WatchFilter {
  matches(event: GitEvent): boolean;
  /** Whether the stream includes this repository at all. */
  includesRepository(repository: string): boolean;
}

/** Events that have no ref under refs/, so ref patterns do not filter them. */
const REPOSITORY_LEVEL_TYPES: ReadonlySet<GitEventType> = new Set([
  GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED,
  GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED,
  GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED,
]);

/** Longest repository name or ref pattern accepted, in characters. */
const MAX_NAME_LENGTH = 4096;

/**
 * Checks and compiles the filters of a watch request. Throws
 * InvalidRequestError naming the first invalid value.
 */
export function compileWatchFilter(request: {
  repositories: readonly string[];
  refPatterns: readonly string[];
  eventTypes: readonly number[];
}): WatchFilter {
  request.repositories.forEach(validateRepositoryName);
  const repositories = request.repositories.length === 0 ? null : new Set(request.repositories);
  const patterns = request.refPatterns.length === 0 ? null : request.refPatterns.map(compileRefPattern);

  for (const type of request.eventTypes) {
    if (!KNOWN_EVENT_TYPES.has(type)) {
      throw new InvalidRequestError(
        `invalid event type ${type}: use a GitEventType value from 1 (BRANCH_CREATED) to ${Math.max(...KNOWN_EVENT_TYPES)}, or none for all types`,
      );
    }
  }
  const eventTypes = request.eventTypes.length === 0 ? null : new Set<number>(request.eventTypes);

  const includesRepository = (repository: string) => repositories === null || repositories.has(repository);
  return {
    includesRepository,
    matches(event) {
      if (!includesRepository(event.repository)) return false;
      if (eventTypes !== null && !eventTypes.has(event.type)) return false;
      if (patterns === null || REPOSITORY_LEVEL_TYPES.has(event.type)) return true;
      return patterns.some((pattern) => pattern.test(event.refName));
    },
  };
}

/**
 * Throws InvalidRequestError unless `name` is a repository name relative to
 * the root that stays inside it: "/"-separated segments, none empty, "." or
 * "..", no backslash and no control character.
 */
export function validateRepositoryName(name: string): void {
  const shown = JSON.stringify(name);
  const fail = (reason: string): never => {
    throw new InvalidRequestError(
      `invalid repository name ${shown}: ${reason}; use a path relative to the repository root, such as "acme/catalog.git"`,
    );
  };

  if (name === "") fail("it is empty");
  if (name.length > MAX_NAME_LENGTH) fail(`it is longer than ${MAX_NAME_LENGTH} characters`);
  if (name.startsWith("/")) fail("it is an absolute path");
  if (name.includes("\\")) fail("it contains a backslash");
  if (/[\u0000-\u001f\u007f]/.test(name)) fail("it contains a control character");
  for (const segment of name.split("/")) {
    if (segment === "") fail("it has an empty path segment");
    if (segment === "." || segment === "..") fail(`it has a "${segment}" segment`);
  }
}

/**
 * Compiles a git-style ref pattern into a regular expression. A pattern
 * matches a ref equal to it, a ref under it, or a ref it matches as a glob
 * in which "*" also matches "/", as `git for-each-ref` does.
 */
export function compileRefPattern(pattern: string): RegExp {
  const shown = JSON.stringify(pattern);
  const fail = (reason: string): never => {
    throw new InvalidRequestError(
      `invalid ref pattern ${shown}: ${reason}; use a full ref name or glob such as "refs/heads/*" or "refs/tags/v*"`,
    );
  };

  if (pattern === "") fail("it is empty");
  if (pattern.length > MAX_NAME_LENGTH) fail(`it is longer than ${MAX_NAME_LENGTH} characters`);
  if (!pattern.startsWith("refs/")) fail('it does not start with "refs/"');
  if (/[\u0000-\u0020\u007f]/.test(pattern)) fail("it contains a space or a control character");

  let source = "";
  let hasGlob = false;
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index]!;
    if (char === "*") {
      hasGlob = true;
      source += ".*";
    } else if (char === "?") {
      hasGlob = true;
      source += ".";
    } else if (char === "[") {
      hasGlob = true;
      const end = pattern.indexOf("]", index + 2);
      if (end === -1) fail(`the "[" at position ${index + 1} is never closed`);
      let body = pattern.slice(index + 1, end);
      const negated = body.startsWith("!") || body.startsWith("^");
      if (negated) body = body.slice(1);
      if (body === "") fail(`the character class at position ${index + 1} is empty`);
      const escaped = body.replace(/[\\\]^]/g, "\\$&");
      source += negated ? `[^${escaped}]` : `[${escaped}]`;
      index = end;
    } else if (char === "\\") {
      const next = pattern[index + 1];
      if (next === undefined) fail("it ends with a backslash");
      source += escapeRegExp(next!);
      index += 1;
    } else {
      source += escapeRegExp(char);
    }
  }

  // Without glob characters, "refs/tags" also matches refs under it.
  const suffix = hasGlob ? "" : pattern.endsWith("/") ? ".*" : "(?:/.*)?";
  try {
    return new RegExp(`^${source}${suffix}$`, "s");
  } catch (error) {
    // A character class such as "[z-a]" whose range is out of order.
    return fail(`it is not a valid glob (${(error as Error).message})`);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}
