import { zeroOid, type RepositorySnapshot } from "./types.js";

/** One ref whose object id differs between two snapshots. */
export interface RefChange {
  refName: string;
  /** The all-zero id when the ref was created. */
  oldOid: string;
  /** The all-zero id when the ref was deleted. */
  newOid: string;
}

/** Everything that differs between two snapshots of one repository. */
export interface SnapshotDiff {
  repositoryCreated: boolean;
  repositoryDeleted: boolean;
  /** Sorted by ref name, in byte order. */
  refChanges: RefChange[];
  /** Set when the target of HEAD changed; "" stands for a detached HEAD. */
  headChange: { oldTarget: string; newTarget: string } | null;
}

/**
 * Compares two snapshots of one repository. `previous` is null for a
 * repository seen for the first time and `current` is null for one that
 * disappeared. Both must have the same object format when both are set.
 */
export function diffSnapshots(
  previous: RepositorySnapshot | null,
  current: RepositorySnapshot | null,
): SnapshotDiff {
  const refChanges: RefChange[] = [];
  const oldRefs = previous?.refs ?? new Map<string, string>();
  const newRefs = current?.refs ?? new Map<string, string>();
  const absent = zeroOid((current ?? previous)!.objectFormat);

  for (const [refName, oldOid] of oldRefs) {
    const newOid = newRefs.get(refName);
    if (newOid !== oldOid) {
      refChanges.push({ refName, oldOid, newOid: newOid ?? absent });
    }
  }
  for (const [refName, newOid] of newRefs) {
    if (!oldRefs.has(refName)) {
      refChanges.push({ refName, oldOid: absent, newOid });
    }
  }
  refChanges.sort((a, b) => compareBytes(a.refName, b.refName));

  const bothExist = previous !== null && current !== null;
  const headChange =
    bothExist && previous.head !== current.head
      ? { oldTarget: previous.head ?? "", newTarget: current.head ?? "" }
      : null;

  return {
    repositoryCreated: previous === null && current !== null,
    repositoryDeleted: previous !== null && current === null,
    refChanges,
    headChange,
  };
}

/** Returns true when two snapshots have the same object format, HEAD and refs. */
export function snapshotsEqual(a: RepositorySnapshot, b: RepositorySnapshot): boolean {
  if (a.objectFormat !== b.objectFormat || a.head !== b.head || a.refs.size !== b.refs.size) return false;
  for (const [refName, oid] of a.refs) {
    if (b.refs.get(refName) !== oid) return false;
  }
  return true;
}

/** Orders strings by UTF-16 code units, which is git's byte order for ASCII ref names. */
export function compareBytes(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}
