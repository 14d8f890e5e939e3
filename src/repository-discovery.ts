import { readdir, stat } from "node:fs/promises";
import path from "node:path";

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
 * is a bare repository when it holds a `HEAD` file and `objects` and `refs`
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
    // A folder removed while the search runs is simply gone.
    if (isMissingPath(error) && relative !== "") return;
    throw error;
  }

  const names = new Set(entries.map((entry) => entry.name));
  if (relative !== "" && names.has("HEAD")) {
    const layoutProblem = await checkRepositoryLayout(folder);
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

async function checkRepositoryLayout(folder: string): Promise<string | null> {
  for (const required of ["objects", "refs"]) {
    try {
      const info = await stat(path.join(folder, required));
      if (!info.isDirectory()) return `${required} is not a folder`;
    } catch (error) {
      if (isMissingPath(error)) return `has a HEAD file but no ${required} folder`;
      throw error;
    }
  }
  return null;
}

/** Whether a file-system error means the path does not exist (any more). */
export function isMissingPath(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
