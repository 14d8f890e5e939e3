import { GitEventType, ObjectType, zeroOid, type GitEvent } from "./types.js";
import { compileRefPattern, InvalidRequestError, type RefPattern } from "./watch-filter.js";

/** The API's decision for one event. */
export type Decision =
  /** Hydrate the catalogue's latest state from `commit` of the default branch. */
  | { action: "hydrate_latest"; repository: string; ref: string; commit: string }
  /** Hydrate a draft from `commit` of a branch other than the default one. */
  | { action: "hydrate_draft"; repository: string; ref: string; commit: string }
  /** Promote `commit`, the peeled target of a release tag, to live. */
  | { action: "promote_live"; repository: string; ref: string; commit: string }
  /** Withdraw what was hydrated or promoted from `ref`, which was deleted. */
  | { action: "retract"; repository: string; ref: string }
  /** Nothing to do. `reason` explains why, for logs. */
  | { action: "ignore"; repository: string; ref: string; reason: string };

export interface RouterConfig {
  /**
   * Glob over tag names without "refs/tags/" that marks release tags; "*"
   * also matches "/". Default "v*".
   */
  releaseTagPattern?: string;
}

export const DEFAULT_RELEASE_TAG_PATTERN = "v*";

/**
 * Creates a router: a pure function from an event to the API's decision.
 * Throws InvalidRequestError when the release tag pattern is invalid.
 */
export function createRouter(config: RouterConfig = {}): (event: GitEvent) => Decision {
  const pattern = config.releaseTagPattern ?? DEFAULT_RELEASE_TAG_PATTERN;
  let releaseTag: RefPattern;
  try {
    releaseTag = compileRefPattern(`refs/tags/${pattern}`);
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    throw new InvalidRequestError(
      `invalid release tag pattern ${JSON.stringify(pattern)}: it is not a valid glob over tag names; use one such as "v*" or "release-*"`,
    );
  }
  return (event) => routeEvent(event, releaseTag);
}

function routeEvent(event: GitEvent, releaseTag: RefPattern): Decision {
  const repository = event.repository;
  const ref = event.refName;
  const ignore = (reason: string): Decision => ({ action: "ignore", repository, ref, reason });
  const commit = event.peeledOid;
  // A branch can point at a tree or a blob, and only commits can be hydrated.
  const notCommit = event.objectType !== ObjectType.OBJECT_TYPE_COMMIT;

  switch (event.type) {
    case GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED:
    case GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED:
    case GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED:
      if (notCommit) return ignore("the branch does not point to a commit");
      return event.isDefaultBranch
        ? { action: "hydrate_latest", repository, ref, commit }
        : { action: "hydrate_draft", repository, ref, commit };

    case GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED:
      return { action: "retract", repository, ref };

    case GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED:
      if (event.newTarget === "") return ignore("HEAD is detached");
      if (event.newOid === zeroOid(event.objectFormat)) return ignore(`the new default branch ${event.newTarget} has no commit yet`);
      if (notCommit) return ignore(`the new default branch ${event.newTarget} does not point to a commit`);
      return { action: "hydrate_latest", repository, ref: event.newTarget, commit };

    case GitEventType.GIT_EVENT_TYPE_TAG_CREATED:
    case GitEventType.GIT_EVENT_TYPE_TAG_MOVED:
      if (!releaseTag.test(ref)) return ignore("not a release tag");
      if (commit === "") return ignore("the tag points to a missing object");
      return { action: "promote_live", repository, ref, commit };

    case GitEventType.GIT_EVENT_TYPE_TAG_DELETED:
      return releaseTag.test(ref) ? { action: "retract", repository, ref } : ignore("not a release tag");

    case GitEventType.GIT_EVENT_TYPE_REF_CREATED:
    case GitEventType.GIT_EVENT_TYPE_REF_UPDATED:
    case GitEventType.GIT_EVENT_TYPE_REF_DELETED:
      return ignore("notes, replace and other refs do not change the catalogue");

    case GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED:
      return ignore("the branch and tag events of the new repository follow");

    case GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED:
      return ignore("the deleted events of its branches and tags came first");

    case GitEventType.GIT_EVENT_TYPE_UNSPECIFIED:
    case GitEventType.UNRECOGNIZED:
    default:
      // Also types added to the contract after this router was written.
      return ignore(`unknown event type ${event.type}`);
  }
}
