/**
 * Measures the change stream end to end with real git and a real server
 * process on 127.0.0.1, and writes docs/benchmarks.md. Run with
 * `npm run bench`; it takes a few minutes on two cores.
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createChannel, createClient } from "nice-grpc";

import { watchEvents } from "../src/client.js";
import { GitEventServiceDefinition } from "../src/generated/gitstore/git/v1/events.js";
import { readSnapshot } from "../src/git.js";
import { ObjectFormat } from "../src/types.js";
import { commit, Fixture, git, gitWithInput, spawnServer, type ServerProcess } from "../test/helpers.js";

const RESULTS_PAGE = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "benchmarks.md");

interface Result {
  name: string;
  value: string;
  target: string;
  met: boolean;
}

const results: Result[] = [];

function record(name: string, value: number, unit: string, target: number, comparison: "max" | "min"): void {
  const met = comparison === "max" ? value <= target : value >= target;
  const format = (number: number) => (number >= 100 ? Math.round(number).toLocaleString("en-US") : number.toFixed(1));
  results.push({ name, value: `${format(value)} ${unit}`, target: `${comparison === "max" ? "≤" : "≥"} ${format(target)} ${unit}`, met });
  console.log(`${met ? "met    " : "MISSED "} ${name}: ${format(value)} ${unit} (target ${comparison} ${format(target)})`);
}

/** Peak resident memory of a process so far, in MiB, from /proc. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kib / 1024;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function startArgs(fixture: Fixture, pollIntervalMs: number, extra: string[]): string[] {
  return ["--root", fixture.root, "--data-dir", fixture.dataDir, "--listen", "127.0.0.1:0", "--poll-interval", String(pollIntervalMs), ...extra];
}

interface BenchRepository {
  fixture: Fixture;
  /** A work tree whose main is pushed to acme/catalog.git. */
  clone: string;
  /** The commit main points to. */
  head: string;
  server: ServerProcess;
}

/**
 * Creates acme/catalog.git with main pushed, runs a server process on it
 * with `pollIntervalMs` and `extraArgs`, and removes everything afterwards.
 */
async function withRepository(
  pollIntervalMs: number,
  extraArgs: string[],
  run: (repository: BenchRepository) => Promise<void>,
): Promise<void> {
  const fixture = new Fixture();
  try {
    fixture.createBare("acme/catalog.git");
    const clone = fixture.createClone("acme/catalog.git");
    git(clone, "push", "-q", "origin", "main");
    const head = git(clone, "rev-parse", "HEAD");

    const server = await spawnServer(startArgs(fixture, pollIntervalMs, extraArgs));
    try {
      await run({ fixture, clone, head, server });
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  } finally {
    fixture.remove();
  }
}

/** Push-to-event latency of single pushes, median of 20. */
async function benchLatency(pollIntervalMs: number, fileNotifications: boolean, targetMs: number): Promise<void> {
  await withRepository(pollIntervalMs, ["--file-notifications", String(fileNotifications)], async ({ clone, server }) => {
    const latencies: number[] = [];
    const stream = watchEvents(`127.0.0.1:${server.port}`)[Symbol.asyncIterator]();
    await stream.next(); // the first heartbeat: the stream is open

    for (let index = 0; index < 20; index++) {
      commit(clone, `latency ${index}`);
      git(clone, "push", "-q", "origin", "main");
      const pushedAt = performance.now();
      let result = await stream.next();
      while (!result.done && result.value.type !== "event") result = await stream.next();
      latencies.push(performance.now() - pushedAt);
    }
    await stream.return(undefined);
    const mode = fileNotifications ? "file notifications" : "polling only";
    record(`push to event, ${mode}, poll interval ${pollIntervalMs} ms (median of 20)`, median(latencies), "ms", targetMs, "max");
  });
}

/** Five pushes of 10,000 tags each, with one stalled watcher and one reading watcher. */
async function benchBulkPush(): Promise<void> {
  await withRepository(100, [], async ({ clone, head, server }) => {
    const address = `127.0.0.1:${server.port}`;
    const baselineRss = peakRssMiB(server.child.pid!);

    // A watcher that opens a stream and never reads past the first message.
    const stalledChannel = createChannel(address);
    const stalled = createClient(GitEventServiceDefinition, stalledChannel).watch({ afterSequence: 0 })[Symbol.asyncIterator]();
    await stalled.next();

    const total = 50_000;
    const abort = new AbortController();
    let received = 0;
    let firstAt = 0;
    const reader = (async () => {
      for await (const item of watchEvents(address, { afterSequence: 0, signal: abort.signal })) {
        if (item.type !== "event") continue;
        if (received === 0) firstAt = performance.now();
        received += 1;
        if (received === total) break;
      }
    })();

    let pushedAt = 0;
    const pushDurations: number[] = [];
    for (let batch = 0; batch < total / 10_000; batch++) {
      const lines = Array.from({ length: 10_000 }, (_, index) => `create refs/tags/b${batch}-${index} ${head}\n`).join("");
      gitWithInput(clone, lines, "update-ref", "--stdin");
      const start = performance.now();
      git(clone, "push", "-q", "origin", "--tags");
      pushedAt = performance.now();
      pushDurations.push(pushedAt - start);
    }
    const firstBatchDone = performance.now();
    await reader;
    const allReceived = performance.now();

    record("10,000-tag push: git push itself (median of 5)", median(pushDurations), "ms", 10_000, "max");
    record("50,000 events from 5 pushes delivered after the last push", allReceived - Math.max(pushedAt, firstBatchDone), "ms", 5_000, "max");
    record("streaming rate to one watcher", (total / (allReceived - firstAt)) * 1000, "events/s", 5_000, "min");
    record("server peak memory with one stalled watcher", peakRssMiB(server.child.pid!), "MiB", 300, "max");
    console.log(`  (server memory before the pushes: ${baselineRss.toFixed(1)} MiB)`);

    await stalled.return?.();
    stalledChannel.close();
  });
}

/** Replay of 100,000 retained events from disk to a new watcher. */
async function benchReplay(): Promise<void> {
  await withRepository(100, [], async ({ fixture, clone, head, server }) => {
    const address = `127.0.0.1:${server.port}`;
    const total = 100_000;
    for (let batch = 0; batch < total / 10_000; batch++) {
      const lines = Array.from({ length: 10_000 }, (_, index) => `create refs/tags/r${batch}-${index} ${head}\n`).join("");
      gitWithInput(clone, lines, "update-ref", "--stdin");
      git(clone, "push", "-q", "origin", "--tags");
    }

    // Wait until the last event is committed, then replay from 0.
    for await (const item of watchEvents(address, { afterSequence: total - 1 })) {
      if (item.type === "event") break;
    }
    const start = performance.now();
    let received = 0;
    for await (const item of watchEvents(address, { afterSequence: 0 })) {
      if (item.type === "event" && ++received === total) break;
    }
    const seconds = (performance.now() - start) / 1000;
    record("replay of 100,000 events after a cursor", total / seconds, "events/s", 10_000, "min");

    // The service's own snapshot of a repository with 100,001 refs, first
    // as loose ref files (as a push leaves them), then packed (as git gc
    // leaves them).
    const bare = path.join(fixture.root, "acme/catalog.git");
    const timeSnapshots = async () => {
      const durations: number[] = [];
      for (let index = 0; index < 5; index++) {
        const start = performance.now();
        await readSnapshot(bare, ObjectFormat.OBJECT_FORMAT_SHA1);
        durations.push(performance.now() - start);
      }
      return median(durations);
    };
    record("snapshot of 100,001 loose refs (median of 5)", await timeSnapshots(), "ms", 2_000, "max");
    git(bare, "pack-refs", "--all", "--prune");
    record("snapshot of 100,001 packed refs (median of 5)", await timeSnapshots(), "ms", 300, "max");
  });
}

async function main(): Promise<void> {
  await benchLatency(1000, true, 200);
  await benchLatency(100, false, 350);
  await benchBulkPush();
  await benchReplay();

  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const lines = [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts): real git, the built server",
    "(`node dist/server.js`) as a separate process on 127.0.0.1, and the client",
    "library. Each target is the number the service is held to.",
    "",
    `Last run: ${new Date().toISOString().slice(0, 10)}, Node.js ${process.version}, ${git(".", "--version")},`,
    `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory, ${os.platform()}.`,
    "",
    "| measurement | result | target | met |",
    "| --- | --- | --- | --- |",
    ...results.map((result) => `| ${result.name} | ${result.value} | ${result.target} | ${result.met ? "yes" : "**no**"} |`),
    "",
    "Notes:",
    "",
    "- With file notifications a push is snapshotted about 15 ms after its last",
    "  ref file is written, and once more 50 ms later to check that the refs",
    "  settled. With polling only, a push waits for the next poll; this script",
    "  pushes right after the previous event, so it waits about a whole",
    "  interval, the worst case, plus the 50 ms check.",
    "- Peak memory is close to its target: it includes the journal's cache of",
    "  the newest 20,000 events and the snapshots of the 50,000 refs.",
    "- The stalled watcher opens a stream and never reads; the server's memory",
    "  stays bounded because each stream holds at most one page of events.",
    "- Peak memory is the server process's VmHWM from /proc.",
    "",
  ];
  writeFileSync(RESULTS_PAGE, lines.join("\n"));
  console.log(`wrote ${RESULTS_PAGE}`);
  if (results.some((result) => !result.met)) process.exitCode = 1;
}

await main();
