import {
  GitEventType,
  ObjectFormat,
  ObjectType,
  RefKind,
  type GitEvent,
} from "./generated/gitstore/git/v1/events.js";

export { GitEventType, ObjectFormat, ObjectType, RefKind, type GitEvent };

/** The refs of one repository as read by one snapshot. */
export interface RepositorySnapshot {
  objectFormat: ObjectFormat;
  /** Full name of the branch HEAD points to; null when HEAD is detached. */
  head: string | null;
  /** Full ref name to object id, in lowercase hex. */
  refs: Map<string, string>;
}

/** An event before the ref store gives it a sequence. */
export type UnsequencedEvent = Omit<GitEvent, "sequence">;

const ZERO_SHA1 = "0".repeat(40);
const ZERO_SHA256 = "0".repeat(64);

/** Returns the all-zero object id of a format, git's value for "absent". */
export function zeroOid(format: ObjectFormat): string {
  return format === ObjectFormat.OBJECT_FORMAT_SHA256 ? ZERO_SHA256 : ZERO_SHA1;
}

/** Returns the number of hex digits in an object id of a format. */
export function oidLength(format: ObjectFormat): number {
  return format === ObjectFormat.OBJECT_FORMAT_SHA256 ? 64 : 40;
}

/** Maps git's object format name (`git rev-parse --show-object-format`). */
export function parseObjectFormat(name: string): ObjectFormat {
  switch (name) {
    case "sha1":
      return ObjectFormat.OBJECT_FORMAT_SHA1;
    case "sha256":
      return ObjectFormat.OBJECT_FORMAT_SHA256;
    default:
      throw new Error(`unknown git object format "${name}"; expected sha1 or sha256`);
  }
}

/** Maps git's object type name (`%(objecttype)`). */
export function parseObjectType(name: string): ObjectType {
  switch (name) {
    case "commit":
      return ObjectType.OBJECT_TYPE_COMMIT;
    case "tag":
      return ObjectType.OBJECT_TYPE_TAG;
    case "tree":
      return ObjectType.OBJECT_TYPE_TREE;
    case "blob":
      return ObjectType.OBJECT_TYPE_BLOB;
    default:
      return ObjectType.OBJECT_TYPE_UNSPECIFIED;
  }
}

/** Returns the namespace of a full ref name. */
export function refKindOf(refName: string): RefKind {
  if (refName === "HEAD") return RefKind.REF_KIND_HEAD;
  if (refName.startsWith("refs/heads/")) return RefKind.REF_KIND_BRANCH;
  if (refName.startsWith("refs/tags/")) return RefKind.REF_KIND_TAG;
  if (refName.startsWith("refs/notes/")) return RefKind.REF_KIND_NOTE;
  if (refName.startsWith("refs/replace/")) return RefKind.REF_KIND_REPLACE;
  if (refName.startsWith("refs/remotes/")) return RefKind.REF_KIND_REMOTE;
  return RefKind.REF_KIND_OTHER;
}

/** Every event type a watcher may ask for, that is all but UNSPECIFIED. */
export const KNOWN_EVENT_TYPES: ReadonlySet<GitEventType> = new Set(
  Object.values(GitEventType).filter(
    (value): value is GitEventType =>
      typeof value === "number" && value > GitEventType.GIT_EVENT_TYPE_UNSPECIFIED,
  ),
);
