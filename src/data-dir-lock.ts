import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";

const LOCK_FILE = "LOCK";

/**
 * Takes the data folder for this process by writing its process id to a
 * LOCK file, because two services on one data folder would both number
 * events from the same sequence. A LOCK file whose process no longer runs
 * was left by a crash and is taken over. Returns the function that
 * releases the lock.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, LOCK_FILE);

  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: "wx" });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }

    const owner = Number((await readFile(file, "utf8").catch(() => "")).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new Error(
        `data folder ${dataDir} is in use by process ${owner}; stop that service or choose another --data-dir`,
      );
    }
    await rm(file, { force: true });
  }
  throw new Error(`cannot lock data folder ${dataDir}: another process keeps creating ${file}`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
