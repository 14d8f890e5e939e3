import { mkdir, open, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";

import { appendFileDurably, replaceFileAtomically } from "./durable-file.js";
import { GitEvent } from "./generated/gitstore/git/v1/events.js";
import type { Logger } from "./logger.js";

/**
 * The record of sequenced events. The ref store appends to it and watchers
 * read from it by cursor. It is an interface so that a distributed log can
 * replace the file journal when several replicas serve one set of watchers.
 */
export interface EventJournal {
  /** Sequence of the oldest retained event; lastSequence + 1 when empty. */
  readonly firstSequence: number;
  /** Sequence of the newest event; 0 when no event was ever appended. */
  readonly lastSequence: number;
  /** Appends events whose sequences continue lastSequence; durable on return. */
  append(events: readonly GitEvent[]): Promise<void>;
  /** Reads up to `limit` events with a sequence larger than `afterSequence`. */
  read(afterSequence: number, limit: number): Promise<GitEvent[]>;
  close(): Promise<void>;
}

export interface FileEventJournalOptions {
  /** Folder of the segment files; created when missing. */
  directory: string;
  /**
   * Minimum number of events kept. Whole segments are deleted, so between
   * this and this plus one segment are kept.
   */
  retainedEvents: number;
  /** Events per segment file; defaults to a quarter of the retention, at most 10,000. */
  segmentEvents?: number;
  /** Newest events kept in memory so that live watchers never read the disk. */
  cachedEvents?: number;
  logger: Logger;
}

interface Segment {
  firstSequence: number;
  file: string;
}

const SEGMENT_SUFFIX = ".ndjson";
const DEFAULT_CACHED_EVENTS = 20_000;

/**
 * An event journal in newline-delimited JSON segment files named after the
 * sequence of their first event. Each event is one line in the protobuf JSON
 * mapping of GitEvent. A line cut short by a crash is removed when the
 * journal opens.
 */
export class FileEventJournal implements EventJournal {
  readonly #options: Required<FileEventJournalOptions>;
  readonly #segments: Segment[] = [];
  #segmentLength = 0;
  #lastSequence = 0;
  #cache: GitEvent[] = [];
  #parsedSegment: { file: string; events: GitEvent[] } | null = null;

  private constructor(options: Required<FileEventJournalOptions>) {
    this.#options = options;
  }

  /** Opens the journal in `options.directory`, repairing a torn last line. */
  static async open(options: FileEventJournalOptions): Promise<FileEventJournal> {
    if (!Number.isSafeInteger(options.retainedEvents) || options.retainedEvents < 1) {
      throw new RangeError(`retainedEvents must be a whole number of at least 1, got ${options.retainedEvents}`);
    }
    const journal = new FileEventJournal({
      segmentEvents: Math.max(1, Math.min(10_000, Math.ceil(options.retainedEvents / 4))),
      cachedEvents: DEFAULT_CACHED_EVENTS,
      ...options,
    });
    await journal.#load();
    return journal;
  }

  get firstSequence(): number {
    return this.#segments[0]?.firstSequence ?? this.#lastSequence + 1;
  }

  get lastSequence(): number {
    return this.#lastSequence;
  }

  async append(events: readonly GitEvent[]): Promise<void> {
    let index = 0;
    while (index < events.length) {
      if (this.#segments.length === 0 || this.#segmentLength >= this.#options.segmentEvents) {
        const firstSequence = events[index]!.sequence;
        this.#segments.push({ firstSequence, file: segmentFileName(firstSequence) });
        this.#segmentLength = 0;
      }

      const room = this.#options.segmentEvents - this.#segmentLength;
      const chunk = events.slice(index, index + room);
      const text = chunk.map((event) => JSON.stringify(GitEvent.toJSON(event)) + "\n").join("");
      const segment = this.#segments.at(-1)!;
      await appendFileDurably(path.join(this.#options.directory, segment.file), text);

      this.#segmentLength += chunk.length;
      this.#lastSequence = chunk.at(-1)!.sequence;
      if (this.#parsedSegment?.file === segment.file) this.#parsedSegment = null;
      index += chunk.length;
    }

    this.#cacheEvents(events);
    await this.#deleteExpiredSegments();
  }

  async read(afterSequence: number, limit: number): Promise<GitEvent[]> {
    const cacheStart = this.#cache[0]?.sequence ?? this.#lastSequence + 1;
    if (afterSequence + 1 >= cacheStart) {
      const offset = afterSequence + 1 - cacheStart;
      return this.#cache.slice(offset, offset + limit);
    }

    const result: GitEvent[] = [];
    let segmentIndex = this.#findSegment(afterSequence + 1);
    while (result.length < limit && segmentIndex < this.#segments.length) {
      const events = await this.#readSegment(this.#segments[segmentIndex]!);
      for (const event of events) {
        if (event.sequence > afterSequence && result.length < limit) result.push(event);
      }
      segmentIndex += 1;
    }
    return result;
  }

  async close(): Promise<void> {
    this.#cache = [];
    this.#parsedSegment = null;
  }

  async #load(): Promise<void> {
    const directory = this.#options.directory;
    await mkdir(directory, { recursive: true });

    const files = (await readdir(directory)).filter((name) => name.endsWith(SEGMENT_SUFFIX)).sort();
    for (const file of files) {
      const firstSequence = Number(file.slice(0, -SEGMENT_SUFFIX.length));
      if (!Number.isSafeInteger(firstSequence)) {
        this.#options.logger.warn("journal file ignored", { file, reason: "name is not a sequence number" });
        continue;
      }
      this.#segments.push({ firstSequence, file });
    }

    let last = this.#segments.at(-1);
    if (last === undefined) return;
    let events = await this.#repairSegment(last);

    // A batch is appended in chunks and published only once all of it is
    // on disk. A crash in between leaves the start of a batch that no
    // watcher has seen, so it is removed. The next poll finds those
    // changes again and commits them as one batch.
    const tail = events.at(-1);
    if (tail !== undefined && tail.batchIndex < tail.batchSize - 1) {
      const batchStart = tail.sequence - tail.batchIndex;
      events = await this.#truncateFrom(batchStart);
      last = this.#segments.at(-1);
      this.#options.logger.warn("journal repaired", {
        batchId: tail.batchId,
        removedFromSequence: batchStart,
        reason: "the last batch was cut short by a crash and never published",
      });
    }

    this.#segmentLength = events.length;
    this.#lastSequence = events.at(-1)?.sequence ?? (last === undefined ? 0 : last.firstSequence - 1);
    this.#cacheEvents(events);
  }

  /** Deletes every event from `sequence` on and returns the events left in the last segment. */
  async #truncateFrom(sequence: number): Promise<GitEvent[]> {
    while (this.#segments.length > 0 && this.#segments.at(-1)!.firstSequence >= sequence) {
      await rm(path.join(this.#options.directory, this.#segments.pop()!.file), { force: true });
    }
    const last = this.#segments.at(-1);
    if (last === undefined) return [];

    const file = path.join(this.#options.directory, last.file);
    const kept = (await this.#readSegment(last)).filter((event) => event.sequence < sequence);
    const text = kept.map((event) => JSON.stringify(GitEvent.toJSON(event)) + "\n").join("");
    await replaceFileAtomically(file, text);
    this.#parsedSegment = null;
    return kept;
  }

  /** Reads the last segment and truncates it after its last complete event. */
  async #repairSegment(segment: Segment): Promise<GitEvent[]> {
    const file = path.join(this.#options.directory, segment.file);
    const text = await readFile(file, "utf8");

    // Every complete event ends with a newline, so the text after the last
    // newline is empty unless a crash cut a write short.
    const lines = text.split("\n");
    const tornLine = lines.pop() ?? "";
    const events = parseSegment(file, lines, segment.firstSequence);
    const validLength = text.length - tornLine.length;

    if (validLength < text.length) {
      const handle = await open(file, "r+");
      try {
        await handle.truncate(Buffer.byteLength(text.slice(0, validLength)));
        await handle.sync();
      } finally {
        await handle.close();
      }
      this.#options.logger.warn("journal repaired", {
        file: segment.file,
        keptEvents: events.length,
        reason: "the last line was incomplete, as after a crash during a write",
      });
    }
    return events;
  }

  async #readSegment(segment: Segment): Promise<GitEvent[]> {
    if (this.#parsedSegment?.file === segment.file) return this.#parsedSegment.events;

    const file = path.join(this.#options.directory, segment.file);
    const text = await readFile(file, "utf8");
    const events = parseSegment(
      file,
      text.split("\n").filter((line) => line !== ""),
      segment.firstSequence,
    );
    this.#parsedSegment = { file: segment.file, events };
    return events;
  }

  /** Index of the segment holding `sequence`, by binary search. */
  #findSegment(sequence: number): number {
    let low = 0;
    let high = this.#segments.length - 1;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if (this.#segments[middle]!.firstSequence <= sequence) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  #cacheEvents(events: readonly GitEvent[]): void {
    this.#cache.push(...events);
    const excess = this.#cache.length - this.#options.cachedEvents;
    if (excess > 0) this.#cache.splice(0, excess);
  }

  async #deleteExpiredSegments(): Promise<void> {
    // Delete the oldest segment only while the remaining ones still hold
    // the retained number of events.
    while (this.#segments.length > 1 && this.#lastSequence - this.#segments[1]!.firstSequence + 1 >= this.#options.retainedEvents) {
      const expired = this.#segments.shift()!;
      await rm(path.join(this.#options.directory, expired.file), { force: true });
      if (this.#parsedSegment?.file === expired.file) this.#parsedSegment = null;
    }

    const firstSequence = this.firstSequence;
    const stale = this.#cache.findIndex((event) => event.sequence >= firstSequence);
    if (stale > 0) this.#cache.splice(0, stale);
  }
}

/**
 * Parses the lines of one segment file and checks that they hold events
 * with consecutive sequences from `firstSequence`, so a damaged or edited
 * file fails loudly instead of streaming a gap.
 */
function parseSegment(file: string, lines: readonly string[], firstSequence: number): GitEvent[] {
  return lines.map((line, index) => {
    const fail = (reason: string, cause?: unknown): never => {
      throw new Error(
        `journal file ${file} line ${index + 1} ${reason}; restore the data folder from a backup or move the file away`,
        { cause },
      );
    };
    let event: GitEvent;
    try {
      event = GitEvent.fromJSON(JSON.parse(line));
    } catch (error) {
      return fail("is not a valid event", error);
    }
    if (event.sequence !== firstSequence + index) fail(`has sequence ${event.sequence} where ${firstSequence + index} belongs`);
    if (event.repository === "") fail("has no repository");
    return event;
  });
}

function segmentFileName(firstSequence: number): string {
  return String(firstSequence).padStart(20, "0") + SEGMENT_SUFFIX;
}
