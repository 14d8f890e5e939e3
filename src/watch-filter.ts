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

/** Maximum length of a repository name or ref pattern, in characters. */
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
  const shown = quote(name);
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

/** A compiled ref pattern. */
export interface RefPattern {
  test(refName: string): boolean;
}

type GlobToken =
  | { kind: "literal"; char: string }
  | { kind: "any" }
  | { kind: "star" }
  | { kind: "class"; negated: boolean; ranges: [string, string][] };

/**
 * Compiles a git-style ref pattern. A pattern matches a ref equal to it, a
 * ref under it, or a ref it matches as a glob in which "*" also matches
 * "/", as `git for-each-ref` does. Matching takes time proportional to the
 * pattern length times the ref length at most, unlike a backtracking
 * regular expression, so no pattern a client sends can stall the server.
 */
export function compileRefPattern(pattern: string): RefPattern {
  const shown = quote(pattern);
  const fail = (reason: string): never => {
    throw new InvalidRequestError(
      `invalid ref pattern ${shown}: ${reason}; use a full ref name or glob such as "refs/heads/*" or "refs/tags/v*"`,
    );
  };

  if (pattern === "") fail("it is empty");
  if (pattern.length > MAX_NAME_LENGTH) fail(`it is longer than ${MAX_NAME_LENGTH} characters`);
  if (!pattern.startsWith("refs/")) fail('it does not start with "refs/"');
  if (/[\u0000-\u0020\u007f]/.test(pattern)) fail("it contains a space or a control character");

  const tokens: GlobToken[] = [];
  let hasGlob = false;
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index]!;
    if (char === "*") {
      hasGlob = true;
      // Consecutive stars match what one star matches.
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (char === "?") {
      hasGlob = true;
      tokens.push({ kind: "any" });
    } else if (char === "[") {
      hasGlob = true;
      const end = pattern.indexOf("]", index + 2);
      if (end === -1) fail(`the "[" at position ${index + 1} is never closed`);
      let body = pattern.slice(index + 1, end);
      const negated = body.startsWith("!") || body.startsWith("^");
      if (negated) body = body.slice(1);
      if (body === "") fail(`the character class at position ${index + 1} is empty`);
      tokens.push({ kind: "class", negated, ranges: parseClass(body, index + 1, fail) });
      index = end;
    } else if (char === "\\") {
      const next = pattern[index + 1];
      if (next === undefined) fail("it ends with a backslash");
      tokens.push({ kind: "literal", char: next! });
      index += 1;
    } else {
      tokens.push({ kind: "literal", char });
    }
  }

  if (!hasGlob) {
    // Without glob characters, "refs/tags" also matches refs under it.
    const literal = tokens.map((token) => (token.kind === "literal" ? token.char : "")).join("");
    const prefix = literal.endsWith("/") ? literal : `${literal}/`;
    return { test: (refName) => refName === literal || refName.startsWith(prefix) };
  }
  return { test: (refName) => matchGlob(tokens, refName) };
}

function parseClass(body: string, position: number, fail: (reason: string) => never): [string, string][] {
  const ranges: [string, string][] = [];
  for (let index = 0; index < body.length; index++) {
    const low = body[index]!;
    if (body[index + 1] === "-" && index + 2 < body.length) {
      const high = body[index + 2]!;
      if (high < low) fail(`the range "${low}-${high}" in the character class at position ${position} is reversed`);
      ranges.push([low, high]);
      index += 2;
    } else {
      ranges.push([low, low]);
    }
  }
  return ranges;
}

/**
 * Matches a glob against a text by walking both once and, on a mismatch,
 * going back only to the last star, which then absorbs one more character.
 */
function matchGlob(tokens: readonly GlobToken[], text: string): boolean {
  let tokenIndex = 0;
  let textIndex = 0;
  let starToken = -1;
  let starText = 0;

  while (textIndex < text.length) {
    const token = tokens[tokenIndex];
    if (token?.kind === "star") {
      starToken = tokenIndex++;
      starText = textIndex;
    } else if (token !== undefined && matchesChar(token, text[textIndex]!)) {
      tokenIndex += 1;
      textIndex += 1;
    } else if (starToken !== -1) {
      tokenIndex = starToken + 1;
      textIndex = ++starText;
    } else {
      return false;
    }
  }
  while (tokens[tokenIndex]?.kind === "star") tokenIndex += 1;
  return tokenIndex === tokens.length;
}

function matchesChar(token: Exclude<GlobToken, { kind: "star" }>, char: string): boolean {
  switch (token.kind) {
    case "literal":
      return token.char === char;
    case "any":
      return true;
    case "class":
      return token.ranges.some(([low, high]) => char >= low && char <= high) !== token.negated;
  }
}

/** Quotes a value for an error message, cut to 200 characters so a huge value cannot flood logs. */
function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}...` : value);
}
