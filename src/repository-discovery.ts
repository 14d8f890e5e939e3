import { lstat, readdir } from "node:fs/promises";
import path from "node:path";

import { validateRepositoryName } from "./watch-filter.js";

/** Folders deeper than this below the root are not searched. */
export const MAX_DISCOVERY_DEPTH = 8;

/** A folder under the root that looks like a repository but is not one. */
export interface SkippedFolder {
  name: string;
  reason: string;
}

export interface DiscoveryResult {
  /** Repository names relative to the root, with "/" separators, sorted. */
  repositories: string[];
  skipped: SkippedFolder[];
}

/**
 * Finds every bare repository under `root`, nested ones included. A folder
 * is a bare repository when it contains a `HEAD` file and `objects` and `refs`
 * folders, the layout git itself checks for. The search does not descend
 * into repositories, does not follow symbolic links (so it never leaves the
 * root) and skips hidden folders.
 */
export async function discoverRepositories(root: string, signal?: AbortSignal): Promise<DiscoveryResult> {
  const result: DiscoveryResult = { repositories: [], skipped: [] };
  await searchFolder(root, "", 0, result, signal);
  result.repositories.sort();
  return result;
}

async function searchFolder(
  root: string,
  relative: string,
  depth: number,
  result: DiscoveryResult,
  signal: AbortSignal | undefined,
): Promise<void> {
  signal?.throwIfAborted();

  const folder = path.join(root, relative);
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (error) {
    // The root itself must be readable; below it, a folder removed while
    // the search runs is gone and an unreadable one is skipped.
    if (relative === "") throw error;
    if (!isMissingPath(error)) {
      result.skipped.push({ name: relative, reason: `cannot be read: ${(error as Error).message}` });
    }
    return;
  }

  const names = new Set(entries.map((entry) => entry.name));
  if (relative !== "" && names.has("HEAD")) {
    const layoutProblem = (await checkRepositoryLayout(folder, names)) ?? checkName(relative);
    if (layoutProblem === null) {
      result.repositories.push(relative);
    } else {
      result.skipped.push({ name: relative, reason: layoutProblem });
    }
    return;
  }
  if (relative.endsWith(".git")) {
    result.skipped.push({ name: relative, reason: "named like a repository but has no HEAD file" });
  }

  if (depth >= MAX_DISCOVERY_DEPTH) return;
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const child = relative === "" ? entry.name : `${relative}/${entry.name}`;
    await searchFolder(root, child, depth + 1, result, signal);
  }
}

async function checkRepositoryLayout(folder: string, names: ReadonlySet<string>): Promise<string | null> {
  // A commondir file points git at another repository's refs and objects,
  // which may lie outside the root.
  if (names.has("commondir")) return "has a commondir file, which points outside the folder";
  for (const required of ["objects", "refs"]) {
    try {
      // lstat: a symbolic link here could lead git outside the root.
      const info = await lstat(path.join(folder, required));
      if (!info.isDirectory()) return `${required} is not a folder (symbolic links are not followed)`;
    } catch (error) {
      if (isMissingPath(error)) return `has a HEAD file but no ${required} folder`;
      throw error;
    }
  }
  return null;
}

/** Rejects names that watchers could not ask for, such as ones with control characters. */
function checkName(relative: string): string | null {
  try {
    validateRepositoryName(relative);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Returns true when a file-system error means the path does not exist (any more). */
export function isMissingPath(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
