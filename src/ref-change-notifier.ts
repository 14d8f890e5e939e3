import { watch, type FSWatcher } from "node:fs";
import path from "node:path";

import type { Logger } from "./logger.js";

/**
 * Time that notifications of one repository are gathered before the
 * callback runs, in milliseconds. A push writes several files (lock files,
 * then the refs), and one snapshot after the last of them sees the whole
 * push as one batch.
 */
const SETTLE_MS = 15;

/**
 * Calls back when files that hold refs may have changed, using the
 * operating system's file notifications. It watches each repository's own
 * folder (HEAD, packed-refs and their lock files) and its refs/ folder
 * recursively, but not objects/, which holds most of the files.
 *
 * Notifications only make changes visible sooner: the watcher still polls,
 * because notifications can be dropped (a full inotify queue) or be missing
 * (network file systems), and each failure here is logged once and leaves
 * that repository to polling.
 */
export class RefChangeNotifier {
  readonly #root: string;
  readonly #logger: Logger;
  readonly #onChange: (repository: string) => void;
  readonly #watchers = new Map<string, FSWatcher[]>();
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
      if (!this.#watchers.has(repository)) this.#watch(repository);
    }
  }

  close(): void {
    for (const repository of [...this.#watchers.keys()]) this.#unwatch(repository);
  }

  #watch(repository: string): void {
    const gitDir = path.join(this.#root, repository);
    const watchers: FSWatcher[] = [];
    this.#watchers.set(repository, watchers);

    const notify = () => this.#schedule(repository);
    try {
      watchers.push(watch(gitDir, { persistent: false }, notify));
      watchers.push(watch(path.join(gitDir, "refs"), { persistent: false, recursive: true }, notify));
    } catch (error) {
      this.#logFailure(repository, error);
      return;
    }
    for (const watcher of watchers) {
      // Raised when the folder is removed; polling reports the removal.
      watcher.on("error", (error) => {
        this.#logger.debug("file notifications ended", { repository, error });
        this.#unwatch(repository);
      });
    }
  }

  #unwatch(repository: string): void {
    for (const watcher of this.#watchers.get(repository) ?? []) watcher.close();
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
