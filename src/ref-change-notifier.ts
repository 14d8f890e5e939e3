import { watch, type FSWatcher } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";

import type { Logger } from "./logger.js";

/**
 * Time that notifications of one repository are gathered before the
 * callback runs, in milliseconds. A ref update writes a burst of files (a
 * lock file, then the rename), and one callback per burst saves snapshots.
 */
const SETTLE_MS = 15;

/**
 * Calls back when files that hold refs may have changed, using the
 * operating system's file notifications. It watches each repository's own
 * folder (HEAD, packed-refs and their lock files) and every folder under
 * refs/, one watcher per folder, but not objects/, which holds most files.
 *
 * Folders are watched one by one rather than with `recursive: true`,
 * because Node 20 implements recursive watching on Linux with one watcher
 * per file: a push of 10,000 tags kept its event loop busy for minutes.
 *
 * Notifications only make changes visible sooner: the watcher still polls,
 * because notifications can be dropped (a full inotify queue) or be missing
 * (network file systems), and each failure here leaves that repository to
 * polling.
 */
export class RefChangeNotifier {
  readonly #root: string;
  readonly #logger: Logger;
  readonly #onChange: (repository: string) => void;
  /** Repository → watched folder → watcher. */
  readonly #watchers = new Map<string, Map<string, FSWatcher>>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #failureLogged = false;

  constructor(options: { root: string; logger: Logger; onChange: (repository: string) => void }) {
    this.#root = options.root;
    this.#logger = options.logger;
    this.#onChange = options.onChange;
  }

  /** Watches exactly these repositories from now on. */
  update(repositories: readonly string[]): void {
    const wanted = new Set(repositories);
    for (const repository of [...this.#watchers.keys()]) {
      if (!wanted.has(repository)) this.#unwatch(repository);
    }
    for (const repository of wanted) {
      if (!this.#watchers.has(repository)) {
        this.#watchers.set(repository, new Map());
        void this.#syncFolders(repository);
      }
    }
  }

  close(): void {
    for (const repository of [...this.#watchers.keys()]) this.#unwatch(repository);
  }

  /** Watches the repository folder and every folder under refs/, and stops watching removed ones. */
  async #syncFolders(repository: string): Promise<void> {
    const gitDir = path.join(this.#root, repository);
    let folders: string[];
    try {
      folders = [gitDir, ...(await listFolders(path.join(gitDir, "refs")))];
    } catch (error) {
      // Removed meanwhile: the next poll reports it and update() drops it.
      this.#logger.debug("ref folders not listed", { repository, error });
      return;
    }

    const watchers = this.#watchers.get(repository);
    if (watchers === undefined) return; // unwatched while listing
    const firstSync = watchers.size === 0;
    let added = 0;
    const current = new Set(folders);
    for (const [folder, watcher] of watchers) {
      if (!current.has(folder)) {
        watcher.close();
        watchers.delete(folder);
      }
    }
    for (const folder of folders) {
      if (watchers.has(folder)) continue;
      try {
        const watcher = watch(folder, { persistent: false }, () => this.#schedule(repository));
        // Raised when the folder is removed; the next sync or poll deals with it.
        watcher.on("error", () => {
          watcher.close();
          watchers.delete(folder);
        });
        watchers.set(folder, watcher);
        added += 1;
      } catch (error) {
        this.#logFailure(repository, error);
        return;
      }
    }

    // A ref written into a new folder before its watcher existed raised no
    // notification, so take one more snapshot.
    if (added > 0 && !firstSync) this.#schedule(repository);
  }

  #unwatch(repository: string): void {
    for (const watcher of this.#watchers.get(repository)?.values() ?? []) watcher.close();
    this.#watchers.delete(repository);
    clearTimeout(this.#timers.get(repository));
    this.#timers.delete(repository);
  }

  #schedule(repository: string): void {
    if (this.#timers.has(repository)) return;
    this.#timers.set(
      repository,
      setTimeout(() => {
        this.#timers.delete(repository);
        this.#onChange(repository);
        // A notification may be about a new folder, such as refs/heads/team/.
        void this.#syncFolders(repository);
      }, SETTLE_MS),
    );
  }

  #logFailure(repository: string, error: unknown): void {
    // One line for the whole service: the usual cause, a limit on inotify
    // watches, affects every repository alike.
    if (this.#failureLogged) return;
    this.#failureLogged = true;
    this.#logger.warn("file notifications unavailable; relying on polling", { repository, error });
  }
}

/** Lists `folder` and every folder below it, without following symbolic links. */
async function listFolders(folder: string): Promise<string[]> {
  const folders = [folder];
  for (let index = 0; index < folders.length; index++) {
    const entries = await readdir(folders[index]!, { withFileTypes: true });
    for (const entry of entries) {
      if (entry.isDirectory()) folders.push(path.join(folders[index]!, entry.name));
    }
  }
  return folders;
}
