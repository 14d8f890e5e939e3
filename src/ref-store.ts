import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";

import { execute } from "abort-controller-x";

import { lockDataDir } from "./data-dir-lock.js";
import { replaceFileAtomically } from "./durable-file.js";
import { FileEventJournal, type EventJournal } from "./event-journal.js";
import type { Logger } from "./logger.js";
import {
  GitEventType,
  ObjectFormat,
  zeroOid,
  type GitEvent,
  type RepositorySnapshot,
  type UnsequencedEvent,
} from "./types.js";

/** The new state of one repository and the events that led to it. */
export interface RepositoryChange {
  repository: string;
  /** null when the repository is gone. */
  snapshot: RepositorySnapshot | null;
  events: UnsequencedEvent[];
}

/** The committed state of every repository at one sequence. */
export interface StoreState {
  sequence: number;
  repositories: ReadonlyMap<string, RepositorySnapshot>;
}

/** A cursor outside the retained range of the journal. */
export class CursorOutOfRangeError extends Error {
  constructor(
    readonly cursor: number,
    readonly oldestSequence: number,
    readonly currentSequence: number,
  ) {
    const reason =
      cursor > currentSequence
        ? `is beyond the current sequence ${currentSequence}, so the server's data was reset or restored`
        : `is older than the oldest retained event ${oldestSequence}`;
    super(
      `cursor ${cursor} ${reason}; retained events are ${oldestSequence} to ${currentSequence}. ` +
        "List the current refs and resume after the sequence of that listing",
    );
    this.name = "CursorOutOfRangeError";
  }
}

export interface RefStoreOptions {
  dataDir: string;
  /** Minimum number of events kept for replay. */
  retainedEvents: number;
  logger: Logger;
  /** Replaces the file journal, for example with a distributed log. */
  journal?: EventJournal;
}

interface CheckpointFile {
  sequence: number;
}

interface SnapshotFile {
  repository: string;
  objectFormat: "sha1" | "sha256";
  head: string | null;
  refs: [string, string][];
}

/**
 * The committed state: the last snapshot of every repository and the
 * journal of events, kept under the data folder.
 *
 * A commit appends events to the journal durably, then updates the
 * in-memory snapshots and the published sequence in one synchronous step,
 * so a reader never sees a snapshot that disagrees with the sequence. The
 * snapshot files are written after that, and a checkpoint file records the
 * sequence they reflect. After a crash between the two, opening replays the
 * journal events after the checkpoint onto the snapshots.
 */
export class RefStore {
  readonly #options: RefStoreOptions;
  readonly #journal: EventJournal;
  readonly #snapshots = new Map<string, RepositorySnapshot>();
  readonly #waiters = new Set<() => void>();
  #sequence = 0;
  #hadStoredState = false;
  #commitQueue: Promise<unknown> = Promise.resolve();
  readonly #unlock: () => Promise<void>;

  private constructor(options: RefStoreOptions, journal: EventJournal, unlock: () => Promise<void>) {
    this.#options = options;
    this.#journal = journal;
    this.#unlock = unlock;
  }

  /** Opens the store in `options.dataDir`, creating the folder when missing. */
  static async open(options: RefStoreOptions): Promise<RefStore> {
    await mkdir(path.join(options.dataDir, "snapshots"), { recursive: true });
    const unlock = await lockDataDir(options.dataDir);
    try {
      const journal =
        options.journal ??
        (await FileEventJournal.open({
          directory: path.join(options.dataDir, "journal"),
          retainedEvents: options.retainedEvents,
          logger: options.logger,
        }));
      const store = new RefStore(options, journal, unlock);
      await store.#load();
      return store;
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  /** Sequence of the newest committed event; 0 before the first one. */
  get sequence(): number {
    return this.#sequence;
  }

  /** Sequence of the oldest event that can still be replayed. */
  get oldestSequence(): number {
    return this.#journal.firstSequence;
  }

  /** False on the very first start with an empty data folder. */
  get hadStoredState(): boolean {
    return this.#hadStoredState;
  }

  snapshot(repository: string): RepositorySnapshot | undefined {
    return this.#snapshots.get(repository);
  }

  /** Returns the snapshots and the sequence they are consistent with. */
  state(): StoreState {
    return { sequence: this.#sequence, repositories: new Map(this.#snapshots) };
  }

  /**
   * Gives the events consecutive sequences, records them and the new
   * snapshots, and wakes the watchers. Commits run one at a time in call
   * order. Returns the sequenced events.
   */
  commit(changes: readonly RepositoryChange[]): Promise<GitEvent[]> {
    const result = this.#commitQueue.then(() => this.#commitNow(changes));
    this.#commitQueue = result.catch(() => undefined);
    return result;
  }

  /**
   * Reads up to `limit` events after `cursor`. Throws CursorOutOfRangeError
   * when events after the cursor are no longer retained or the cursor is
   * beyond the current sequence.
   */
  async read(cursor: number, limit: number): Promise<GitEvent[]> {
    this.checkCursor(cursor);
    const sequence = this.#sequence;
    let events: GitEvent[];
    try {
      events = await this.#journal.read(cursor, limit);
    } catch (error) {
      // Retention can delete the segment between the check and the read;
      // then the cursor has just expired.
      this.checkCursor(cursor);
      throw error;
    }
    // The journal may hold events a commit has not published yet.
    return events.filter((event) => event.sequence <= sequence);
  }

  /** Throws CursorOutOfRangeError unless events after `cursor` can be replayed. */
  checkCursor(cursor: number): void {
    const oldest = this.#journal.firstSequence;
    if (cursor > this.#sequence || cursor < oldest - 1) {
      throw new CursorOutOfRangeError(cursor, oldest, this.#sequence);
    }
  }

  /**
   * Waits until the sequence passes `cursor` or `timeoutMs` passes. Returns
   * whether the sequence passed. Rejects with AbortError when `signal` aborts.
   */
  async waitForSequence(cursor: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.#sequence > cursor) return true;
    return execute<boolean>(signal, (resolve) => {
      const wake = () => resolve(true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#waiters.add(wake);
      return () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
      };
    });
  }

  async close(): Promise<void> {
    await this.#commitQueue;
    await this.#journal.close();
    await this.#unlock();
  }

  async #commitNow(changes: readonly RepositoryChange[]): Promise<GitEvent[]> {
    let next = this.#journal.lastSequence;
    const events = changes.flatMap((change) => change.events.map((event) => ({ ...event, sequence: ++next })));
    if (events.length > 0) await this.#journal.append(events);

    // Publish: snapshots and sequence change together, with no await between.
    for (const change of changes) {
      if (change.snapshot === null) this.#snapshots.delete(change.repository);
      else this.#snapshots.set(change.repository, change.snapshot);
    }
    this.#sequence = this.#journal.lastSequence;
    for (const wake of [...this.#waiters]) wake();

    for (const change of changes) {
      await this.#writeSnapshot(change.repository, change.snapshot);
    }
    await this.#writeCheckpoint();
    return events;
  }

  async #load(): Promise<void> {
    const checkpoint = await readJsonFile<CheckpointFile>(this.#checkpointPath());
    this.#hadStoredState = checkpoint !== undefined || this.#journal.lastSequence > 0;

    const snapshotDir = path.join(this.#options.dataDir, "snapshots");
    for (const file of await readdir(snapshotDir)) {
      if (!file.endsWith(".json")) continue;
      const stored = await readJsonFile<SnapshotFile>(path.join(snapshotDir, file));
      if (stored === undefined) continue;
      checkSnapshotFile(path.join(snapshotDir, file), stored);
      this.#snapshots.set(stored.repository, {
        objectFormat: stored.objectFormat === "sha256" ? ObjectFormat.OBJECT_FORMAT_SHA256 : ObjectFormat.OBJECT_FORMAT_SHA1,
        head: stored.head,
        refs: new Map(stored.refs),
      });
    }

    // Replay what a crash kept from reaching the snapshot files.
    const checkpointSequence = checkpoint?.sequence ?? 0;
    if (!Number.isSafeInteger(checkpointSequence) || checkpointSequence > this.#journal.lastSequence) {
      // Starting anyway would number new events again from the journal's
      // end, and stored cursors would resume into different events.
      throw new Error(
        `checkpoint.json in ${this.#options.dataDir} is at sequence ${checkpointSequence} but the journal ends at ` +
          `${this.#journal.lastSequence}; the journal was lost or replaced. Restore the whole data folder from one backup, ` +
          "or empty the data folder to start over (watchers then resynchronise)",
      );
    }
    const touched = new Set<string>();
    let cursor = Math.max(checkpointSequence, this.#journal.firstSequence - 1);
    for (;;) {
      const events = await this.#journal.read(cursor, 10_000);
      if (events.length === 0) break;
      for (const event of events) {
        applyEvent(this.#snapshots, event);
        touched.add(event.repository);
      }
      cursor = events.at(-1)!.sequence;
    }
    this.#sequence = this.#journal.lastSequence;

    if (touched.size > 0) {
      this.#options.logger.warn("snapshots recovered from the journal", {
        checkpointSequence,
        sequence: this.#sequence,
        repositories: [...touched],
      });
      for (const repository of touched) {
        await this.#writeSnapshot(repository, this.#snapshots.get(repository) ?? null);
      }
      await this.#writeCheckpoint();
    }
  }

  // TODO: write only the refs that changed. The whole snapshot file of the
  // repository is rewritten on every commit, which costs time in proportion
  // to its ref count even for a one-ref push.
  async #writeSnapshot(repository: string, snapshot: RepositorySnapshot | null): Promise<void> {
    // Named by a hash: a repository name can be longer than a file name may be.
    const hash = createHash("sha256").update(repository).digest("hex").slice(0, 40);
    const file = path.join(this.#options.dataDir, "snapshots", `${hash}.json`);
    if (snapshot === null) {
      await rm(file, { force: true });
      return;
    }
    const stored: SnapshotFile = {
      repository,
      objectFormat: snapshot.objectFormat === ObjectFormat.OBJECT_FORMAT_SHA256 ? "sha256" : "sha1",
      head: snapshot.head,
      refs: [...snapshot.refs],
    };
    await replaceFileAtomically(file, JSON.stringify(stored));
  }

  async #writeCheckpoint(): Promise<void> {
    const checkpoint: CheckpointFile = { sequence: this.#sequence };
    await replaceFileAtomically(this.#checkpointPath(), JSON.stringify(checkpoint));
  }

  #checkpointPath(): string {
    return path.join(this.#options.dataDir, "checkpoint.json");
  }
}

/** Applies one journal event to the snapshots, as the watcher would have. */
function applyEvent(snapshots: Map<string, RepositorySnapshot>, event: GitEvent): void {
  switch (event.type) {
    case GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED:
      snapshots.set(event.repository, { objectFormat: event.objectFormat, head: event.newTarget || null, refs: new Map() });
      return;
    case GitEventType.GIT_EVENT_TYPE_REPOSITORY_DELETED:
      snapshots.delete(event.repository);
      return;
    default:
      break;
  }

  const snapshot = snapshots.get(event.repository);
  if (snapshot === undefined) return;
  if (event.type === GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED) {
    snapshot.head = event.newTarget || null;
  } else if (event.newOid === zeroOid(event.objectFormat)) {
    snapshot.refs.delete(event.refName);
  } else {
    snapshot.refs.set(event.refName, event.newOid);
  }
}

/** Throws an error naming `file` unless `stored` has the shape of a snapshot file. */
function checkSnapshotFile(file: string, stored: unknown): asserts stored is SnapshotFile {
  const value = stored as Partial<SnapshotFile> | null;
  const valid =
    typeof value === "object" &&
    value !== null &&
    typeof value.repository === "string" &&
    value.repository !== "" &&
    (value.objectFormat === "sha1" || value.objectFormat === "sha256") &&
    (value.head === null || typeof value.head === "string") &&
    Array.isArray(value.refs) &&
    value.refs.every((entry) => Array.isArray(entry) && typeof entry[0] === "string" && typeof entry[1] === "string");
  if (!valid) {
    throw new Error(`snapshot file ${file} is not a valid snapshot; restore the data folder from a backup or remove the file`);
  }
}

async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${file}: ${(error as Error).message}; restore the data folder or remove the file`, {
      cause: error,
    });
  }
}
