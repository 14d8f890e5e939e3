import { readdir } from "node:fs/promises";
import path from "node:path";

import { isMissingPath } from "./repository-discovery.js";

/**
 * Returns the path, relative to `gitDir`, of a lock file that git holds
 * while a ref update is under way, or null when there is none. Git's files
 * backend creates `<ref>.lock` for every ref of a transaction before it
 * renames any of them into place. It also holds `packed-refs.lock` or
 * `HEAD.lock` while it rewrites those files. A snapshot taken while a lock
 * exists could see only part of one push. A missing folder counts as no
 * lock.
 */
export async function findRefLock(gitDir: string): Promise<string | null> {
  let topLevel: string[];
  try {
    topLevel = await readdir(gitDir);
  } catch (error) {
    if (isMissingPath(error)) return null;
    throw error;
  }
  for (const name of ["HEAD.lock", "packed-refs.lock"]) {
    if (topLevel.includes(name)) return name;
  }

  const folders = ["refs"];
  for (let index = 0; index < folders.length; index++) {
    const folder = folders[index]!;
    let entries;
    try {
      entries = await readdir(path.join(gitDir, folder), { withFileTypes: true });
    } catch (error) {
      if (isMissingPath(error)) continue;
      throw error;
    }
    for (const entry of entries) {
      const relative = `${folder}/${entry.name}`;
      if (entry.isDirectory()) folders.push(relative);
      else if (entry.name.endsWith(".lock")) return relative;
    }
  }
  return null;
}
