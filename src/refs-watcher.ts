import { randomUUID } from "node:crypto";
import path from "node:path";

import { delay, isAbortError } from "abort-controller-x";

import { classifyChanges } from "./change-classifier.js";
import { readSnapshot } from "./git.js";
import type { Logger } from "./logger.js";
import { RefChangeNotifier } from "./ref-change-notifier.js";
import { findRefLock } from "./ref-lock.js";
import type { RefStore, RepositoryChange } from "./ref-store.js";
import { discoverRepositories } from "./repository-discovery.js";
import { diffSnapshots, snapshotsEqual } from "./snapshot-diff.js";
import type { RepositorySnapshot } from "./types.js";

/** Repositories snapshotted at once during one poll; each is a few git processes. */
const MAX_CONCURRENT_SNAPSHOTS = 4;

/**
 * Quiet time that a changed repository must show before its snapshot is
 * committed, in milliseconds. A push of many refs updates them one at a
 * time over seconds, and waiting until two snapshots this far apart agree
 * turns the whole push into one batch.
 */
const SETTLE_MS = 50;

/**
 * Maximum time a snapshot waits for the refs to settle or for git's ref
 * locks to go, in milliseconds. After it, the refs as read are committed,
 * and a lock still there is taken as left behind by a crashed git process.
 */
const MAX_SETTLE_MS = 10_000;

export interface RefsWatcherOptions {
  /** Folder whose bare repositories are watched. */
  root: string;
  store: RefStore;
  /** Time between two polls of every repository, in milliseconds. */
  pollIntervalMs: number;
  /**
   * Whether file notifications trigger a snapshot of the repository that
   * changed, between polls. Default true.
   */
  fileNotifications?: boolean;
  logger: Logger;
}

/**
 * Watches every bare repository under a root folder: polls them, diffs each
 * snapshot against the committed one and commits the differences as events.
 * File notifications on a repository's refs trigger a snapshot of that
 * repository at once. The poll finds new and removed repositories and is
 * the safety net for notifications that never came.
 *
 * On the very first start (an empty data folder) the repositories found are
 * recorded as the baseline without events, since a watcher that wants the
 * initial state asks for it with list-then-watch. From then on, a new
 * repository yields REPOSITORY_CREATED and the created events of its refs.
 */
export class RefsWatcher {
  readonly #options: RefsWatcherOptions;
  readonly #abort = new AbortController();
  /** Last error logged per repository, so a broken one is logged once, not every poll. */
  readonly #reportedErrors = new Map<string, string>();
  /** Repositories with file notifications since their last snapshot. */
  readonly #dirty = new Set<string>();
  /** When each repository was first seen with a ref lock, in epoch milliseconds. */
  readonly #lockedSince = new Map<string, number>();
  readonly #notifier: RefChangeNotifier | null;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #baselineRecorded: boolean;

  constructor(options: RefsWatcherOptions) {
    if (!Number.isSafeInteger(options.pollIntervalMs) || options.pollIntervalMs < 1) {
      throw new RangeError(`pollIntervalMs must be a whole number of milliseconds of at least 1, got ${options.pollIntervalMs}`);
    }
    this.#options = options;
    this.#baselineRecorded = options.store.hadStoredState;
    this.#notifier =
      options.fileNotifications === false
        ? null
        : new RefChangeNotifier({
            root: options.root,
            logger: options.logger,
            onChange: (repository) => {
              this.#dirty.add(repository);
              this.#wake?.();
            },
          });
  }

  /** Polls once, then keeps polling in the background until stop(). */
  async start(): Promise<void> {
    const { logger, root, pollIntervalMs } = this.#options;
    await this.poll();
    logger.info("watcher started", { root: path.resolve(root), pollIntervalMs, fileNotifications: this.#notifier !== null });
    this.#loop = this.#run();
  }

  /** Ends polling and waits for the poll under way, if any. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.#notifier?.close();
    this.#options.logger.info("watcher stopped", { root: path.resolve(this.#options.root) });
  }

  /**
   * Discovers repositories, snapshots each one and commits what changed.
   * Repositories that cannot be read are logged and skipped.
   */
  async poll(): Promise<void> {
    const { root, store, logger } = this.#options;
    const signal = this.#abort.signal;

    const discovery = await discoverRepositories(root, signal);
    for (const skipped of discovery.skipped) {
      this.#reportOnce(skipped.name, "folder skipped: not a bare repository", { repository: skipped.name, reason: skipped.reason });
    }

    const firstStart = !this.#baselineRecorded;
    const present = new Set(discovery.repositories);
    const removed = [...store.state().repositories.keys()].filter((name) => !present.has(name));

    await this.#pollRepositories(discovery.repositories, firstStart);
    this.#notifier?.update(discovery.repositories);

    for (const repository of removed) {
      await this.#commitDiff(repository, store.snapshot(repository) ?? null, null);
    }

    if (firstStart) {
      // An empty commit writes the checkpoint, which marks the baseline as
      // recorded for later starts too.
      await store.commit([]);
      this.#baselineRecorded = true;
      logger.info("baseline recorded", { repositories: discovery.repositories.length });
    }
  }

  async #pollRepositories(repositories: readonly string[], firstStart: boolean): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < repositories.length) {
        const repository = repositories[next++]!;
        await this.#pollRepository(repository, firstStart);
      }
    };
    await Promise.all(Array.from({ length: MAX_CONCURRENT_SNAPSHOTS }, worker));
  }

  async #run(): Promise<void> {
    const { logger, pollIntervalMs, root } = this.#options;
    const signal = this.#abort.signal;
    let nextPollAt = Date.now() + pollIntervalMs;
    let failing = false;

    while (!signal.aborted) {
      try {
        await this.#sleepUntil(nextPollAt, signal);
        if (Date.now() >= nextPollAt) {
          nextPollAt = Date.now() + pollIntervalMs;
          this.#dirty.clear();
          await this.poll();
        } else {
          const changed = [...this.#dirty];
          this.#dirty.clear();
          await this.#pollRepositories(changed, false);
        }
      } catch (error) {
        if (isAbortError(error)) break;
        // The next poll retries; the committed state is unchanged. A root
        // that stays unreadable is logged once, not every interval.
        failing = true;
        this.#reportOnce("\0poll", "poll failed; retrying at the next interval", { root, error }, "error");
        continue;
      }
      if (failing) {
        failing = false;
        this.#reportedErrors.delete("\0poll");
        logger.info("poll recovered", { root });
      }
    }
  }

  /** Sleeps until `time` (epoch milliseconds) or until a repository is marked changed. */
  async #sleepUntil(time: number, signal: AbortSignal): Promise<void> {
    if (this.#dirty.size > 0) return;
    const wakeController = new AbortController();
    this.#wake = () => wakeController.abort();
    const onAbort = () => wakeController.abort();
    signal.addEventListener("abort", onAbort);
    try {
      await delay(wakeController.signal, Math.max(0, time - Date.now()));
    } catch (error) {
      if (!isAbortError(error)) throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#wake = null;
    }
    signal.throwIfAborted();
  }

  async #pollRepository(repository: string, firstStart: boolean): Promise<void> {
    const { root, store, logger } = this.#options;
    const gitDir = path.join(root, repository);
    const previous = store.snapshot(repository) ?? null;

    let current: RepositorySnapshot;
    try {
      // The baseline is taken as it is: there is no earlier state to
      // split a push against.
      current = firstStart
        ? await readSnapshot(gitDir, undefined, this.#abort.signal)
        : await this.#readSettledSnapshot(repository, gitDir, previous);
    } catch (error) {
      if (isAbortError(error)) throw error;
      // Removed during the snapshot, or not readable by git: the next poll
      // either reads it or finds it gone.
      this.#reportOnce(repository, "repository skipped: snapshot failed", { repository, error });
      return;
    }
    this.#reportedErrors.delete(repository);

    if (firstStart) {
      await store.commit([{ repository, snapshot: current, events: [] }]);
      logger.debug("repository recorded as baseline", { repository, refs: current.refs.size });
      return;
    }

    if (previous !== null && previous.objectFormat !== current.objectFormat) {
      // Removed and created again with another object format between polls.
      await this.#commitDiff(repository, previous, null);
      await this.#commitDiff(repository, null, current);
      return;
    }
    await this.#commitDiff(repository, previous, current);
  }

  // TODO: wait for a settling repository without holding up the others. A
  // long push or a stale ref lock delays every repository's snapshot by up
  // to MAX_SETTLE_MS, because one poll finishes before the next starts.
  /**
   * Takes a snapshot and, when it differs from `previous` or git holds a ref
   * lock, takes more until two in a row agree with no lock in between, so
   * that one push becomes one batch. Gives up after MAX_SETTLE_MS.
   */
  async #readSettledSnapshot(
    repository: string,
    gitDir: string,
    previous: RepositorySnapshot | null,
  ): Promise<RepositorySnapshot> {
    const signal = this.#abort.signal;
    const deadline = Date.now() + MAX_SETTLE_MS;

    // TODO: skip unchanged repositories by the modification times of their
    // ref folders. for-each-ref reads every loose ref file on every poll,
    // about a second of CPU for 100,000 loose refs (docs/benchmarks.md).
    let current = await readSnapshot(gitDir, previous?.objectFormat, signal);
    const unchanged = previous !== null && snapshotsEqual(previous, current);
    if (unchanged && !(await this.#isMidUpdate(repository, gitDir))) return current;

    for (;;) {
      if (Date.now() >= deadline) {
        this.#reportOnce(`${repository}\0settle`, "refs still changing, so the snapshot is committed as read", {
          repository,
          maxSettleMs: MAX_SETTLE_MS,
        });
        return current;
      }
      await delay(signal, SETTLE_MS);
      if (await this.#isMidUpdate(repository, gitDir)) continue;

      const next = await readSnapshot(gitDir, current.objectFormat, signal);
      if (snapshotsEqual(next, current)) return next;
      current = next;
    }
  }

  /**
   * Tells whether git is updating refs of the repository right now, so that
   * a snapshot would see only part of a push. A lock held longer than
   * MAX_SETTLE_MS is logged once and ignored.
   */
  async #isMidUpdate(repository: string, gitDir: string): Promise<boolean> {
    const lock = await findRefLock(gitDir);
    if (lock === null) {
      this.#lockedSince.delete(repository);
      return false;
    }

    const since = this.#lockedSince.get(repository) ?? Date.now();
    this.#lockedSince.set(repository, since);
    if (Date.now() - since < MAX_SETTLE_MS) return true;

    this.#reportOnce(
      `${repository}\0lock`,
      "ref lock held too long, so snapshots ignore it; remove it if no git process is running",
      { repository, lock, maxSettleMs: MAX_SETTLE_MS },
    );
    return false;
  }

  async #commitDiff(
    repository: string,
    previous: RepositorySnapshot | null,
    current: RepositorySnapshot | null,
  ): Promise<void> {
    const diff = diffSnapshots(previous, current);
    const changed =
      diff.repositoryCreated || diff.repositoryDeleted || diff.refChanges.length > 0 || diff.headChange !== null;
    if (!changed) return;

    const batchId = randomUUID();
    const events = await classifyChanges({
      repository,
      gitDir: path.join(this.#options.root, repository),
      previous,
      current,
      diff,
      batchId,
      observedAt: new Date(),
      signal: this.#abort.signal,
    });
    const change: RepositoryChange = { repository, snapshot: current, events };
    const committed = await this.#options.store.commit([change]);

    this.#options.logger.info("changes committed", {
      repository,
      batchId,
      events: committed.length,
      firstSequence: committed[0]?.sequence,
      lastSequence: committed.at(-1)?.sequence,
    });
  }

  /** Logs a warning (or error) unless the same one was the last logged for `key`. */
  #reportOnce(key: string, message: string, fields: Record<string, unknown>, level: "warn" | "error" = "warn"): void {
    const text = message + JSON.stringify(fields, (_, value) => (value instanceof Error ? value.message : value));
    if (this.#reportedErrors.get(key) === text) return;
    this.#reportedErrors.set(key, text);
    this.#options.logger[level](message, fields);
  }
}
