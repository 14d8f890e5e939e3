import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterEach, describe, test } from "node:test";

import { isAbortError } from "abort-controller-x";

import { watchEvents, type RetryInfo, type WatchItem, type WatchOptions } from "../src/client.js";
import { GitEventType, type GitEvent } from "../src/types.js";
import {
  commit,
  Fixture,
  git,
  spawnServer,
  startTestService,
  WAIT_MS,
  type ServerProcess,
} from "./helpers.js";

const ZERO = "0".repeat(40);
const FAST_RECONNECT: WatchOptions = { initialBackoffMs: 20, maxBackoffMs: 300 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/**
 * Consumes watchEvents in the background, checking as it goes that the
 * items form one unbroken history: sequences strictly increase and each
 * event's old id is the previous new id of the same ref.
 */
class HistoryChecker {
  readonly items: WatchItem[] = [];
  readonly retries: RetryInfo[] = [];
  /** Repository → ref → object id, as the items so far describe it. */
  readonly refs = new Map<string, Map<string, string>>();
  readonly abort = new AbortController();
  readonly done: Promise<void>;
  error: unknown;
  #lastSequence = 0;

  constructor(address: string, options: WatchOptions, consume: (item: WatchItem) => Promise<void> = async () => {}) {
    this.done = (async () => {
      try {
        for await (const item of watchEvents(address, {
          ...options,
          signal: this.abort.signal,
          onRetry: (retry) => this.retries.push(retry),
        })) {
          this.#apply(item);
          this.items.push(item);
          await consume(item);
        }
      } catch (error) {
        if (!isAbortError(error)) this.error = error;
      }
    })();
    cleanups.push(() => this.stop());
  }

  get events(): GitEvent[] {
    return this.items.flatMap((item) => (item.type === "event" ? [item.event] : []));
  }

  #apply(item: WatchItem): void {
    if (item.type === "resync") {
      this.refs.clear();
      for (const event of item.events) {
        if (event.refName.startsWith("refs/")) this.#refsOf(event.repository).set(event.refName, event.newOid);
      }
      this.#lastSequence = item.cursor;
      return;
    }
    if (item.type !== "event") return;

    const event = item.event;
    assert.ok(event.sequence > this.#lastSequence, `sequence ${event.sequence} after ${this.#lastSequence}: duplicate or reordered`);
    this.#lastSequence = event.sequence;
    if (!event.refName.startsWith("refs/")) return;

    const refs = this.#refsOf(event.repository);
    assert.equal(event.oldOid, refs.get(event.refName) ?? ZERO, `gap before sequence ${event.sequence} on ${event.refName}`);
    if (event.newOid === ZERO) refs.delete(event.refName);
    else refs.set(event.refName, event.newOid);
  }

  #refsOf(repository: string): Map<string, string> {
    let refs = this.refs.get(repository);
    if (refs === undefined) this.refs.set(repository, (refs = new Map()));
    return refs;
  }

  /** Waits until the refs the items describe equal `expected`, or fails after WAIT_MS. */
  async waitForRefs(repository: string, expected: Map<string, string>): Promise<void> {
    const deadline = Date.now() + WAIT_MS * 2;
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const actual = this.refs.get(repository) ?? new Map();
      if (sameRefs(actual, expected)) return;
      if (Date.now() > deadline) {
        assert.deepEqual(Object.fromEntries(actual), Object.fromEntries(expected), "refs at the watcher differ from the repository");
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

function sameRefs(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([name, oid]) => b.get(name) === oid);
}

/** Reads every ref of a bare repository with git. */
function refsOf(bare: string): Map<string, string> {
  const output = git(bare, "for-each-ref", "--format=%(objectname) %(refname)");
  return new Map(
    output
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => {
        const [oid, name] = line.split(" ");
        return [name!, oid!];
      }),
  );
}

/** Pushes a mix of branch updates, new branches and tags, one push per step. */
function pushStep(clone: string, step: number): void {
  commit(clone, `step ${step}`);
  git(clone, "push", "-q", "origin", "main");
  if (step % 3 === 0) git(clone, "push", "-q", "origin", `main:refs/heads/topic-${step}`);
  if (step % 4 === 0) {
    git(clone, "tag", `v0.${step}`);
    git(clone, "push", "-q", "origin", `v0.${step}`);
  }
  if (step % 5 === 0) git(clone, "push", "-q", "--force", "origin", "main~1:refs/heads/rewound");
}

/** A TCP proxy on 127.0.0.1 whose open connections a test can cut. */
class TcpProxy {
  readonly #sockets = new Set<net.Socket>();
  readonly #server: net.Server;
  port = 0;

  constructor(targetPort: number) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(targetPort, "127.0.0.1");
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  /** Destroys every open connection, as a network failure would. */
  cut(): number {
    const count = this.#sockets.size;
    for (const socket of this.#sockets) socket.destroy();
    return count;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function serverArgs(fixture: Fixture, listen: string): string[] {
  return ["--root", fixture.root, "--data-dir", fixture.dataDir, "--listen", listen, "--poll-interval", "50", "--heartbeat-interval", "500"];
}

describe("reconnect", () => {
  test("server SIGKILL and restart mid-stream", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    let server: ServerProcess = await spawnServer(serverArgs(fixture, "127.0.0.1:0"));
    const port = server.port;
    cleanups.push(() => void server.child.kill("SIGKILL"));

    const bare = fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    const checker = new HistoryChecker(`127.0.0.1:${port}`, { ...FAST_RECONNECT, afterSequence: 0 });

    for (let step = 1; step <= 24; step++) {
      pushStep(clone, step);
      if (step === 8 || step === 16) {
        server.child.kill("SIGKILL");
        await server.exited;
        // Pushes continue while the server is down.
        pushStep(clone, 100 + step);
        server = await spawnServer(serverArgs(fixture, `127.0.0.1:${port}`));
      }
    }

    await checker.waitForRefs("acme/catalog.git", refsOf(bare));
    assert.ok(checker.retries.length >= 2, `expected reconnects, saw ${checker.retries.length}`);
    assert.equal(checker.events[0]!.type, GitEventType.GIT_EVENT_TYPE_REPOSITORY_CREATED);
  });

  test("connection cut by a TCP proxy", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    const server = await startTestService(fixture, { heartbeatIntervalMs: 500 });
    cleanups.push(() => server.stop());
    const proxy = new TcpProxy(server.service.port);
    await proxy.listen();
    cleanups.push(() => proxy.close());

    const bare = fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    const checker = new HistoryChecker(`127.0.0.1:${proxy.port}`, { ...FAST_RECONNECT, afterSequence: 0 });

    let cuts = 0;
    for (let step = 1; step <= 20; step++) {
      pushStep(clone, step);
      if (step % 5 === 0) {
        await checker.waitForRefs("acme/catalog.git", refsOf(bare));
        cuts += proxy.cut() > 0 ? 1 : 0;
      }
    }

    await checker.waitForRefs("acme/catalog.git", refsOf(bare));
    assert.equal(cuts, 4);
    // A cut can land while the client is already reconnecting, so one
    // reconnect may cover two cuts.
    assert.ok(checker.retries.length >= 2, `expected reconnects after ${cuts} cuts, saw ${checker.retries.length}`);
  });

  test("missed heartbeats cause a reconnect", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    const server = await startTestService(fixture, { heartbeatIntervalMs: 60_000 });
    cleanups.push(() => server.stop());

    const checker = new HistoryChecker(`127.0.0.1:${server.service.port}`, { ...FAST_RECONNECT, heartbeatTimeoutMs: 200 });
    const deadline = Date.now() + WAIT_MS;
    while (checker.retries.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.equal(checker.retries[0]?.error instanceof Error && checker.retries[0].error.name, "HeartbeatTimeoutError");
  });

  test("abort during backoff ends at once", { timeout: WAIT_MS }, async () => {
    const unused = net.createServer();
    await new Promise<void>((resolve) => unused.listen(0, "127.0.0.1", resolve));
    const port = (unused.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => unused.close(() => resolve()));

    const timersBefore = countTimers();
    const controller = new AbortController();
    const retries: RetryInfo[] = [];
    // A one-minute backoff: only the abort can end this loop within the test timeout.
    const iteration = (async () => {
      for await (const item of watchEvents(`127.0.0.1:${port}`, {
        signal: controller.signal,
        initialBackoffMs: 60_000,
        maxBackoffMs: 60_000,
        onRetry: (retry) => {
          retries.push(retry);
          controller.abort();
        },
      })) {
        assert.fail(`no item expected, got ${item.type}`);
      }
    })();

    await assert.rejects(iteration, (error: unknown) => isAbortError(error));
    assert.equal(retries.length, 1);
    assert.equal(retries[0]!.delayMs >= 48_000, true);
    assert.ok(countTimers() <= timersBefore, `timers left: ${countTimers()} after, ${timersBefore} before`);
  });

  test("break closes the call and channel", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    const server = await startTestService(fixture);
    cleanups.push(() => server.stop());
    const streamsBefore = server.logger.records.filter((record) => record.message === "watch ended").length;
    // The test's own client channel to the server counts too, so compare.
    const socketsBefore = countResources("TCPSocketWrap");
    const timersBefore = countTimers();

    for await (const item of watchEvents(`127.0.0.1:${server.service.port}`, {})) {
      assert.equal(item.type, "heartbeat");
      assert.ok(countResources("TCPSocketWrap") > socketsBefore, "the watch opened no socket");
      break;
    }

    const deadline = Date.now() + WAIT_MS;
    const ended = () => server.logger.records.filter((record) => record.message === "watch ended").length;
    while (ended() === streamsBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(ended(), streamsBefore + 1);
    const last = server.logger.records.filter((record) => record.message === "watch ended").at(-1)!;
    assert.equal(last.fields.cancelled, true);

    while (countResources("TCPSocketWrap") > socketsBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(countResources("TCPSocketWrap"), socketsBefore);
    assert.ok(countTimers() <= timersBefore, `timers left: ${countTimers()} after, ${timersBefore} before`);
  });

  test("slow consumer gets every event once", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    const server = await startTestService(fixture, { heartbeatIntervalMs: 100 });
    cleanups.push(() => server.stop());
    const bare = fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");

    // Holding an item longer than the heartbeat timeout must not count as
    // a dead connection: the watchdog only measures the server. The first
    // three events are held 3 s against a timeout of 2 s.
    let held = 0;
    const checker = new HistoryChecker(
      `127.0.0.1:${server.service.port}`,
      { ...FAST_RECONNECT, afterSequence: 0, heartbeatTimeoutMs: 2_000 },
      (item) => new Promise((resolve) => setTimeout(resolve, item.type === "event" && held++ < 3 ? 3_000 : 0)),
    );
    for (let step = 1; step <= 6; step++) pushStep(clone, step);

    await checker.waitForRefs("acme/catalog.git", refsOf(bare));
    assert.deepEqual(checker.retries, []);
  });

  test("backoff grows when streams fail at once", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    // Eight retained events make segments of two events each.
    let server = await startTestService(fixture, { retainedEvents: 8 });
    fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    const bare = path.join(fixture.root, "acme/catalog.git");
    for (let step = 1; step <= 6; step++) pushStep(clone, step);
    // Every push committed, so the restart commits nothing that could make
    // retention delete the damaged segment.
    const deadline = Date.now() + WAIT_MS;
    while (!sameRefs(server.service.store.snapshot("acme/catalog.git")?.refs ?? new Map(), refsOf(bare)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await server.stop();

    // Damage the oldest segment: every replay from 0 fails after the
    // stream's first heartbeat.
    const journal = path.join(fixture.dataDir, "journal");
    const oldest = path.join(journal, readdirSync(journal).sort()[0]!);
    writeFileSync(oldest, "not json\n");
    server = await startTestService(fixture, { retainedEvents: 8 });
    cleanups.push(() => server.stop());

    const cursor = server.service.store.oldestSequence - 1;
    const retries: RetryInfo[] = [];
    const abort = new AbortController();
    const items: WatchItem[] = [];
    const loop = (async () => {
      for await (const item of watchEvents(`127.0.0.1:${server.service.port}`, {
        initialBackoffMs: 10,
        maxBackoffMs: 200,
        afterSequence: cursor,
        signal: abort.signal,
        onRetry: (retry) => {
          retries.push(retry);
          if (retries.length === 4) abort.abort();
        },
      })) {
        items.push(item);
      }
    })();
    await assert.rejects(loop, (error: unknown) => isAbortError(error));
    assert.deepEqual(
      retries.map((retry) => retry.attempt),
      [1, 2, 3, 4],
    );
    assert.ok(items.every((item) => item.type === "heartbeat"));
  });

  test("expired cursor resyncs with current refs", async () => {
    const fixture = new Fixture();
    cleanups.push(() => fixture.remove());
    const server = await startTestService(fixture, { retainedEvents: 2 });
    cleanups.push(() => server.stop());
    const bare = fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    for (let step = 1; step <= 8; step++) {
      pushStep(clone, step);
      const expected = refsOf(bare).get("refs/heads/main");
      while (server.service.store.snapshot("acme/catalog.git")?.refs.get("refs/heads/main") !== expected) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    assert.ok(server.service.store.oldestSequence > 1);

    const checker = new HistoryChecker(`127.0.0.1:${server.service.port}`, { ...FAST_RECONNECT, afterSequence: 0 });
    await checker.waitForRefs("acme/catalog.git", refsOf(bare));
    const resync = checker.items.find((item) => item.type === "resync");
    assert.equal(resync?.type === "resync" && resync.reason, "cursor_out_of_range");
    assert.match(resync?.type === "resync" ? resync.message : "", /oldest retained event/);

    pushStep(clone, 9);
    await checker.waitForRefs("acme/catalog.git", refsOf(bare));
    assert.equal(checker.events.at(-1)!.initial, false);
  });
});

function countTimers(): number {
  return countResources("Timeout");
}

function countResources(type: string): number {
  return process.getActiveResourcesInfo().filter((name) => name === type).length;
}
