import assert from "node:assert/strict";
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { FileEventJournal } from "../src/event-journal.js";
import { GitEvent, GitEventType } from "../src/generated/gitstore/git/v1/events.js";
import { silentLogger, type LogFields, type Logger } from "../src/logger.js";

interface LogRecord {
  level: string;
  message: string;
  fields: LogFields | undefined;
}

/** Creates a logger that stores every record in `records`. */
function collectingLogger(records: LogRecord[]): Logger {
  const record = (level: string) => (message: string, fields?: LogFields) => {
    records.push({ level, message, fields });
  };
  return { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") };
}

function makeEvent(sequence: number): GitEvent {
  return GitEvent.fromPartial({
    sequence,
    repository: "acme/catalog.git",
    refName: `refs/heads/branch-${sequence}`,
    type: GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED,
    oldOid: "0".repeat(40),
    newOid: sequence.toString(16).padStart(40, "a"),
    batchId: `batch-${sequence}`,
    observedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, sequence)),
    batchSize: 1,
  });
}

/** Returns the integers from `first` to `last`, both included. */
function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, index) => first + index);
}

function makeEvents(first: number, last: number): GitEvent[] {
  return range(first, last).map(makeEvent);
}

function sequencesOf(events: readonly GitEvent[]): number[] {
  return events.map((event) => event.sequence);
}

function segmentFileName(firstSequence: number): string {
  return `${String(firstSequence).padStart(20, "0")}.ndjson`;
}

describe("FileEventJournal", () => {
  let root = "";
  let folderCount = 0;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "event-journal-test-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Returns a new folder path under the temporary root. The journal creates the folder. */
  function newDirectory(): string {
    folderCount += 1;
    return path.join(root, `journal-${folderCount}`);
  }

  test("cut-short batch is removed on open", async () => {
    const directory = newDirectory();
    const records: LogRecord[] = [];
    const journal = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await journal.append(makeEvents(1, 3));
    // Sequences 4 to 9 are the first six events of a batch of ten, as a
    // crash between two chunk appends leaves them; they span two segments.
    const batch = makeEvents(4, 9).map((event, index) => ({ ...event, batchId: "cut", batchIndex: index, batchSize: 10 }));
    await journal.append(batch);
    await journal.close();

    const reopened = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: collectingLogger(records) });
    assert.equal(reopened.lastSequence, 3);
    assert.deepEqual(sequencesOf(await reopened.read(0, 100)), [1, 2, 3]);
    assert.ok(records.some((record) => record.message === "journal repaired" && record.fields?.batchId === "cut"));

    await reopened.append(makeEvents(4, 5));
    assert.deepEqual(sequencesOf(await reopened.read(0, 100)), [1, 2, 3, 4, 5]);
  });

  test("sequence gap in a segment fails", async () => {
    const directory = newDirectory();
    const journal = await FileEventJournal.open({ directory, retainedEvents: 100, logger: silentLogger });
    await journal.append(makeEvents(1, 3));
    await journal.close();
    const file = path.join(directory, segmentFileName(1));
    const lines = (await readFile(file, "utf8")).split("\n");
    lines[1] = JSON.stringify(GitEvent.toJSON(makeEvent(7)));
    await writeFile(file, lines.join("\n"));

    await assert.rejects(
      FileEventJournal.open({ directory, retainedEvents: 100, logger: silentLogger }),
      (error: unknown) => error instanceof Error && error.message.includes(file) && error.message.includes("line 2"),
    );
  });

  test("new journal is empty", async () => {
    const journal = await FileEventJournal.open({ directory: newDirectory(), retainedEvents: 10, logger: silentLogger });

    assert.equal(journal.firstSequence, 1);
    assert.equal(journal.lastSequence, 0);
    assert.deepEqual(await journal.read(0, 10), []);
  });

  test("append then read in order", async () => {
    const journal = await FileEventJournal.open({ directory: newDirectory(), retainedEvents: 100, logger: silentLogger });
    const events = makeEvents(1, 5);

    await journal.append(events);

    assert.equal(journal.firstSequence, 1);
    assert.equal(journal.lastSequence, 5);
    assert.deepEqual(await journal.read(0, 10), events);
  });

  test("read honours after and limit", async () => {
    const journal = await FileEventJournal.open({ directory: newDirectory(), retainedEvents: 100, logger: silentLogger });
    await journal.append(makeEvents(1, 5));

    assert.deepEqual(sequencesOf(await journal.read(0, 2)), [1, 2]);
    assert.deepEqual(sequencesOf(await journal.read(2, 2)), [3, 4]);
    assert.deepEqual(sequencesOf(await journal.read(3, 100)), [4, 5]);
    assert.deepEqual(sequencesOf(await journal.read(4, 1)), [5]);
    assert.deepEqual(await journal.read(5, 10), []);
    assert.deepEqual(await journal.read(0, 0), []);
  });

  test("separate appends continue sequences", async () => {
    const journal = await FileEventJournal.open({
      directory: newDirectory(),
      retainedEvents: 100,
      segmentEvents: 3,
      logger: silentLogger,
    });

    await journal.append(makeEvents(1, 2));
    await journal.append(makeEvents(3, 3));
    await journal.append(makeEvents(4, 8));

    assert.equal(journal.lastSequence, 8);
    assert.deepEqual(await journal.read(0, 100), makeEvents(1, 8));
  });

  test("segments split at segmentEvents", async () => {
    const directory = newDirectory();
    const journal = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });

    await journal.append(makeEvents(1, 3));
    await journal.append(makeEvents(4, 10));

    const files = (await readdir(directory)).sort();
    assert.deepEqual(files, [segmentFileName(1), segmentFileName(5), segmentFileName(9)]);
    const firstSegment = await readFile(path.join(directory, segmentFileName(1)), "utf8");
    assert.equal(firstSegment.split("\n").length, 5, "4 lines and the text after the last newline");
  });

  test("reopen preserves events", async () => {
    const directory = newDirectory();
    const events = makeEvents(1, 10);
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(events);
    await first.close();

    const records: LogRecord[] = [];
    const reopened = await FileEventJournal.open({
      directory,
      retainedEvents: 100,
      segmentEvents: 4,
      logger: collectingLogger(records),
    });

    assert.equal(reopened.firstSequence, 1);
    assert.equal(reopened.lastSequence, 10);
    assert.deepEqual(await reopened.read(0, 100), events);
    assert.deepEqual(sequencesOf(await reopened.read(6, 3)), [7, 8, 9]);
    assert.deepEqual(records, []);
  });

  test("reopen continues partial segment", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 6));
    await first.close();

    const reopened = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await reopened.append(makeEvents(7, 9));

    assert.equal(reopened.lastSequence, 9);
    assert.deepEqual(await reopened.read(0, 100), makeEvents(1, 9));
    const files = (await readdir(directory)).sort();
    assert.deepEqual(files, [segmentFileName(1), segmentFileName(5), segmentFileName(9)]);
  });

  test("retention with single appends", async () => {
    const directory = newDirectory();
    const journal = await FileEventJournal.open({ directory, retainedEvents: 10, segmentEvents: 4, logger: silentLogger });

    for (const sequence of range(1, 25)) {
      await journal.append([makeEvent(sequence)]);
      const keptEvents = journal.lastSequence - journal.firstSequence + 1;
      assert.ok(keptEvents >= Math.min(sequence, 10), `after ${sequence}: kept ${keptEvents} events, fewer than retained`);
      assert.ok(keptEvents <= 10 + 4 - 1, `after ${sequence}: kept ${keptEvents} events, more than retained plus one segment`);
    }

    assert.equal(journal.firstSequence, 13);
    assert.equal(journal.lastSequence, 25);
    assert.deepEqual(sequencesOf(await journal.read(0, 100)), range(13, 25));
    const files = (await readdir(directory)).sort();
    assert.deepEqual(files, [segmentFileName(13), segmentFileName(17), segmentFileName(21), segmentFileName(25)]);
  });

  test("retention keeps exactly retainedEvents", async () => {
    const directory = newDirectory();
    const journal = await FileEventJournal.open({ directory, retainedEvents: 10, segmentEvents: 4, logger: silentLogger });

    await journal.append(makeEvents(1, 25));
    assert.equal(journal.firstSequence, 13);
    await journal.append([makeEvent(26)]);

    // Segments 17, 21 and 25 now contain exactly 10 events, so segment 13 is deleted.
    assert.equal(journal.firstSequence, 17);
    assert.equal(journal.lastSequence, 26);
    assert.deepEqual(await journal.read(0, 100), makeEvents(17, 26));
    const files = (await readdir(directory)).sort();
    assert.deepEqual(files, [segmentFileName(17), segmentFileName(21), segmentFileName(25)]);
  });

  const batchShapes: ReadonlyArray<{ name: string; batches: Array<[number, number]> }> = [
    { name: "one batch", batches: [[1, 25]] },
    { name: "uneven batches", batches: [[1, 3], [4, 9], [10, 25]] },
    { name: "segment-sized batches", batches: [[1, 4], [5, 8], [9, 12], [13, 16], [17, 20], [21, 24], [25, 25]] },
    { name: "batches across segments", batches: [[1, 11], [12, 13], [14, 24], [25, 25]] },
  ];
  for (const { name, batches } of batchShapes) {
    test(`retention with ${name}`, async () => {
      const directory = newDirectory();
      const journal = await FileEventJournal.open({ directory, retainedEvents: 10, segmentEvents: 4, logger: silentLogger });

      for (const [first, last] of batches) await journal.append(makeEvents(first, last));

      assert.equal(journal.firstSequence, 13);
      assert.equal(journal.lastSequence, 25);
      assert.deepEqual(await journal.read(0, 100), makeEvents(13, 25));
      for (const after of range(12, 24)) {
        const [next] = await journal.read(after, 1);
        assert.equal(next?.sequence, after + 1, `read(${after}, 1)`);
      }
    });
  }

  test("retention survives reopen", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 10, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 25));
    await first.close();

    const reopened = await FileEventJournal.open({ directory, retainedEvents: 10, segmentEvents: 4, logger: silentLogger });

    assert.equal(reopened.firstSequence, 13);
    assert.equal(reopened.lastSequence, 25);
    assert.deepEqual(await reopened.read(0, 100), makeEvents(13, 25));
  });

  test("expired cursor reads from oldest", async () => {
    const journal = await FileEventJournal.open({
      directory: newDirectory(),
      retainedEvents: 10,
      segmentEvents: 4,
      logger: silentLogger,
    });
    await journal.append(makeEvents(1, 25));

    assert.deepEqual(sequencesOf(await journal.read(0, 3)), [13, 14, 15]);
    assert.deepEqual(sequencesOf(await journal.read(5, 2)), [13, 14]);
  });

  test("reads beyond cache use disk", async () => {
    const journal = await FileEventJournal.open({
      directory: newDirectory(),
      retainedEvents: 100,
      segmentEvents: 4,
      cachedEvents: 3,
      logger: silentLogger,
    });
    await journal.append(makeEvents(1, 10));

    assert.deepEqual(await journal.read(0, 100), makeEvents(1, 10));
    assert.deepEqual(sequencesOf(await journal.read(2, 3)), [3, 4, 5]);
    assert.deepEqual(sequencesOf(await journal.read(3, 6)), [4, 5, 6, 7, 8, 9]);
    assert.deepEqual(sequencesOf(await journal.read(6, 2)), [7, 8]);
    assert.deepEqual(sequencesOf(await journal.read(7, 2)), [8, 9]);
  });

  test("uncached reads return file content", async () => {
    const directory = newDirectory();
    const journal = await FileEventJournal.open({
      directory,
      retainedEvents: 100,
      segmentEvents: 4,
      cachedEvents: 3,
      logger: silentLogger,
    });
    await journal.append(makeEvents(1, 10));

    // Rewriting the oldest segment shows whether a read went to the file or to memory.
    const file = path.join(directory, segmentFileName(1));
    const text = await readFile(file, "utf8");
    await writeFile(file, text.replaceAll("acme/catalog.git", "acme/rewritten.git"));

    const oldEvents = await journal.read(0, 4);
    assert.deepEqual(sequencesOf(oldEvents), [1, 2, 3, 4]);
    assert.equal(oldEvents[0]?.repository, "acme/rewritten.git");
    assert.equal(oldEvents[3]?.repository, "acme/rewritten.git");
    const [cached] = await journal.read(7, 1);
    assert.equal(cached?.sequence, 8);
    assert.equal(cached?.repository, "acme/catalog.git");
  });

  test("torn last line is removed", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 6));
    await first.close();
    const lastFile = path.join(directory, segmentFileName(5));
    const intact = await readFile(lastFile, "utf8");
    await appendFile(lastFile, '{"sequence":7,"repository":"acme/cat');

    const records: LogRecord[] = [];
    const reopened = await FileEventJournal.open({
      directory,
      retainedEvents: 100,
      segmentEvents: 4,
      logger: collectingLogger(records),
    });

    assert.equal(records.length, 1);
    assert.equal(records[0]?.level, "warn");
    assert.equal(records[0]?.message, "journal repaired");
    assert.equal(records[0]?.fields?.file, segmentFileName(5));
    assert.equal(records[0]?.fields?.keptEvents, 2);
    assert.equal(await readFile(lastFile, "utf8"), intact);
    assert.equal(reopened.firstSequence, 1);
    assert.equal(reopened.lastSequence, 6);
    assert.deepEqual(await reopened.read(0, 100), makeEvents(1, 6));
  });

  test("repaired journal continues sequences", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 6));
    await first.close();
    await appendFile(path.join(directory, segmentFileName(5)), '{"sequence":7,"repo');

    const repaired = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await repaired.append(makeEvents(7, 9));
    await repaired.close();

    const records: LogRecord[] = [];
    const reopened = await FileEventJournal.open({
      directory,
      retainedEvents: 100,
      segmentEvents: 4,
      logger: collectingLogger(records),
    });
    assert.deepEqual(records, []);
    assert.equal(reopened.lastSequence, 9);
    assert.deepEqual(await reopened.read(0, 100), makeEvents(1, 9));
  });

  test("torn sole line empties segment", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 4));
    await first.close();
    await writeFile(path.join(directory, segmentFileName(5)), '{"seq');

    const records: LogRecord[] = [];
    const reopened = await FileEventJournal.open({
      directory,
      retainedEvents: 100,
      segmentEvents: 4,
      logger: collectingLogger(records),
    });

    assert.equal(records.length, 1);
    assert.equal(records[0]?.fields?.keptEvents, 0);
    assert.equal(reopened.lastSequence, 4);
    await reopened.append(makeEvents(5, 6));
    assert.equal(reopened.lastSequence, 6);
    assert.deepEqual(await reopened.read(0, 100), makeEvents(1, 6));
    assert.equal((await readFile(path.join(directory, segmentFileName(5)), "utf8")).split("\n").length, 3);
  });

  test("corrupt middle line fails open", async () => {
    const directory = newDirectory();
    const first = await FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger });
    await first.append(makeEvents(1, 3));
    await first.close();
    const file = path.join(directory, segmentFileName(1));
    const lines = (await readFile(file, "utf8")).split("\n");
    lines[1] = "not json";
    await writeFile(file, lines.join("\n"));

    await assert.rejects(
      FileEventJournal.open({ directory, retainedEvents: 100, segmentEvents: 4, logger: silentLogger }),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(file), `message ${JSON.stringify(error.message)} lacks the file`);
        assert.ok(error.message.includes("line 2"), `message ${JSON.stringify(error.message)} lacks the line`);
        return true;
      },
    );
  });

  test(
    "corrupt older segment names file",
    async () => {
      const directory = newDirectory();
      const journal = await FileEventJournal.open({
        directory,
        retainedEvents: 100,
        segmentEvents: 4,
        cachedEvents: 1,
        logger: silentLogger,
      });
      await journal.append(makeEvents(1, 8));
      const file = path.join(directory, segmentFileName(1));
      const lines = (await readFile(file, "utf8")).split("\n");
      lines[1] = "not json";
      await writeFile(file, lines.join("\n"));

      await assert.rejects(journal.read(0, 10), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(segmentFileName(1)), `message ${JSON.stringify(error.message)} lacks the file`);
        return true;
      });
    },
  );

  for (const retainedEvents of [0, -1, 1.5, Number.NaN]) {
    test(`retainedEvents ${retainedEvents} is rejected`, async () => {
      await assert.rejects(
        FileEventJournal.open({ directory: newDirectory(), retainedEvents, logger: silentLogger }),
        (error: unknown) => {
          assert.ok(error instanceof RangeError);
          assert.ok(error.message.includes("retainedEvents"), `message ${JSON.stringify(error.message)} lacks the option`);
          assert.ok(error.message.includes(`got ${retainedEvents}`), `message ${JSON.stringify(error.message)} lacks the value`);
          return true;
        },
      );
    });
  }
});
