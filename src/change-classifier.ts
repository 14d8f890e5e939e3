import { isAncestor, readObjectInfo, type ObjectInfo } from "./git.js";
import type { RefChange, SnapshotDiff } from "./snapshot-diff.js";
import {
  GitEventType,
  ObjectType,
  RefKind,
  refKindOf,
  zeroOid,
  type RepositorySnapshot,
  type UnsequencedEvent,
} from "./types.js";

/** Ancestry checks that run at once for one bulk change; each is a git process. */
const MAX_CONCURRENT_ANCESTRY_CHECKS = 4;

export interface ClassifyInput {
  repository: string;
  gitDir: string;
  previous: RepositorySnapshot | null;
  current: RepositorySnapshot | null;
  diff: SnapshotDiff;
  batchId: string;
  observedAt: Date;
  signal?: AbortSignal | undefined;
}

/**
 * Turns a snapshot diff into typed events. Looks up the object types and
 * peeled objects of the changed refs in one `git cat-file` call, and
 * classifies each branch move as fast-forward or force update by ancestry.
 * Events come in this order: repository created, ref changes by ref name,
 * default branch changed, repository deleted.
 */
export async function classifyChanges(input: ClassifyInput): Promise<UnsequencedEvent[]> {
  const { diff, previous, current } = input;
  const format = (current ?? previous)!.objectFormat;
  const absent = zeroOid(format);

  const newOids = diff.refChanges.map((change) => change.newOid).filter((oid) => oid !== absent);
  const branchMoves = diff.refChanges.filter(
    (change) => refKindOf(change.refName) === RefKind.REF_KIND_BRANCH && change.oldOid !== absent && change.newOid !== absent,
  );
  const newHeadOid = diff.headChange === null ? undefined : current?.refs.get(diff.headChange.newTarget);
  const objectInfo = await readObjectInfo(
    input.gitDir,
    [...newOids, ...branchMoves.map((change) => change.oldOid), ...(newHeadOid === undefined ? [] : [newHeadOid])],
    input.signal,
  );
  const fastForwards = await findFastForwards(input.gitDir, branchMoves, objectInfo, input.signal);

  const base = {
    repository: input.repository,
    batchId: input.batchId,
    objectFormat: format,
    observedAt: input.observedAt,
    oldTarget: "",
    newTarget: "",
    batchSize: 0,
    batchIndex: 0,
    initial: false,
  };
  const events: UnsequencedEvent[] = [];

  // Repository events carry no ref; the default branch goes in the targets.
  const repositoryEvent = (type: GitEventType, targets: { oldTarget?: string; newTarget?: string }): UnsequencedEvent => ({
    ...base,
    ...targets,
    refName: "",
    type,
    refKind: RefKind.REF_KIND_UNSPECIFIED,
    oldOid: absent,
    newOid: absent,
    objectType: ObjectType.OBJECT_TYPE_UNSPECIFIED,
    peeledOid: "",
    isDefaultBranch: false,
  });

  if (diff.repositoryCreated) {
    events.push(repositoryEvent(GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED, { newTarget: current?.head ?? "" }));
  }

  const head = current?.head ?? previous?.head ?? null;
  for (const change of diff.refChanges) {
    const info = objectInfo.get(change.newOid);
    events.push({
      ...base,
      refName: change.refName,
      type: eventTypeOf(change, absent, fastForwards.has(change.refName)),
      refKind: refKindOf(change.refName),
      oldOid: change.oldOid,
      newOid: change.newOid,
      objectType: info?.type ?? ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: info?.peeledOid ?? "",
      isDefaultBranch: change.refName === head,
    });
  }

  if (diff.headChange !== null && previous !== null && current !== null) {
    const { oldTarget, newTarget } = diff.headChange;
    const newOid = newHeadOid ?? absent;
    const info = objectInfo.get(newOid);
    events.push({
      ...base,
      refName: "HEAD",
      type: GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED,
      refKind: RefKind.REF_KIND_HEAD,
      oldOid: previous.refs.get(oldTarget) ?? absent,
      newOid,
      objectType: info?.type ?? ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: info?.peeledOid ?? "",
      isDefaultBranch: false,
      oldTarget,
      newTarget,
    });
  }

  if (diff.repositoryDeleted) {
    events.push(repositoryEvent(GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED, { oldTarget: previous?.head ?? "" }));
  }

  return events.map((event, index) => ({ ...event, batchSize: events.length, batchIndex: index }));
}

function eventTypeOf(change: RefChange, absent: string, fastForward: boolean): GitEventType {
  const created = change.oldOid === absent;
  const deleted = change.newOid === absent;

  switch (refKindOf(change.refName)) {
    case RefKind.REF_KIND_BRANCH:
      if (created) return GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED;
      if (deleted) return GitEventType.GIT_EVENT_TYPE_BRANCH_DELETED;
      return fastForward ? GitEventType.GIT_EVENT_TYPE_BRANCH_UPDATED : GitEventType.GIT_EVENT_TYPE_BRANCH_FORCE_UPDATED;
    case RefKind.REF_KIND_TAG:
      if (created) return GitEventType.GIT_EVENT_TYPE_TAG_CREATED;
      if (deleted) return GitEventType.GIT_EVENT_TYPE_TAG_DELETED;
      return GitEventType.GIT_EVENT_TYPE_TAG_MOVED;
    default:
      if (created) return GitEventType.GIT_EVENT_TYPE_REF_CREATED;
      if (deleted) return GitEventType.GIT_EVENT_TYPE_REF_DELETED;
      return GitEventType.GIT_EVENT_TYPE_REF_UPDATED;
  }
}

/**
 * Returns the names of the branch moves that are fast-forwards. Git has no
 * single call that checks "is A an ancestor of B" for many pairs, so this
 * runs `git merge-base --is-ancestor` per move, a bounded number at once.
 * Moves where either side is not a commit skip git: they are force updates.
 */
async function findFastForwards(
  gitDir: string,
  moves: readonly RefChange[],
  objectInfo: ReadonlyMap<string, ObjectInfo>,
  signal: AbortSignal | undefined,
): Promise<Set<string>> {
  const isCommit = (oid: string) => objectInfo.get(oid)?.type === ObjectType.OBJECT_TYPE_COMMIT;
  const candidates = moves.filter((move) => isCommit(move.oldOid) && isCommit(move.newOid));
  const fastForwards = new Set<string>();

  let next = 0;
  const worker = async () => {
    while (next < candidates.length) {
      const move = candidates[next++]!;
      if (await isAncestor(gitDir, move.oldOid, move.newOid, signal)) {
        fastForwards.add(move.refName);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_CONCURRENT_ANCESTRY_CHECKS, candidates.length) }, worker));
  return fastForwards;
}
