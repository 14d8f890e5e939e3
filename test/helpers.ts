import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createChannel, createClient, type Channel, type Client } from "nice-grpc";

import { DEFAULT_CONFIG, type ServiceConfig } from "../src/config.js";
import {
  GitEventServiceDefinition,
  type GitEvent,
  type WatchRequest,
  type WatchResponse,
} from "../src/generated/gitstore/git/v1/events.js";
import type { LogFields, Logger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";

// Git must not read the machine's ~/.gitconfig or /etc/gitconfig: every git
// process of the tests, and of the service under test, sees only this file.
const gitHome = mkdtempSync(path.join(tmpdir(), "gitstore-test-home-"));
writeFileSync(
  path.join(gitHome, "gitconfig"),
  [
    "[user]",
    "\tname = Test Author",
    "\temail = test@example.invalid",
    "[init]",
    "\tdefaultBranch = main",
    "[advice]",
    "\tdetachedHead = false",
    "[gc]",
    "\tauto = 0",
    "",
  ].join("\n"),
);
Object.assign(process.env, {
  GIT_CONFIG_GLOBAL: path.join(gitHome, "gitconfig"),
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_TERMINAL_PROMPT: "0",
  GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z",
  GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
});
process.on("exit", () => rmSync(gitHome, { recursive: true, force: true }));

/** How long a test waits for an expected event before it fails, in milliseconds. */
export const WAIT_MS = 15_000;

/** Poll interval of the services under test, in milliseconds. */
export const TEST_POLL_INTERVAL_MS = 50;

export type GitEventServiceClient = Client<typeof GitEventServiceDefinition>;

/** Runs git and returns its trimmed standard output; throws with git's stderr on failure. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Runs git with `input` on its standard input; throws with git's stderr on failure. */
export function gitWithInput(cwd: string, input: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] }).trim();
}

/** A temporary folder with a repository root, a data folder and a work folder for clones. */
export class Fixture {
  readonly dir = mkdtempSync(path.join(tmpdir(), "gitstore-test-"));
  readonly root = path.join(this.dir, "root");
  readonly dataDir = path.join(this.dir, "data");
  readonly work = path.join(this.dir, "work");

  constructor() {
    mkdirSync(this.root);
    mkdirSync(this.work);
  }

  /** Creates a bare repository under the root and returns its path. */
  createBare(name: string, options: { objectFormat?: "sha1" | "sha256" } = {}): string {
    const bare = path.join(this.root, name);
    mkdirSync(path.dirname(bare), { recursive: true });
    git(this.dir, "init", "-q", "--bare", `--object-format=${options.objectFormat ?? "sha1"}`, bare);
    return bare;
  }

  /**
   * Creates a work tree whose origin is the bare repository `name`, with one
   * commit on main, not yet pushed. Returns the work tree path.
   */
  createClone(name: string, options: { objectFormat?: "sha1" | "sha256" } = {}): string {
    const clone = path.join(this.work, name.replaceAll("/", "_"));
    git(this.dir, "init", "-q", `--object-format=${options.objectFormat ?? "sha1"}`, clone);
    git(clone, "remote", "add", "origin", path.join(this.root, name));
    commit(clone, "initial");
    return clone;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Commits a change to a file named after `message` and returns the new commit id. */
export function commit(clone: string, message: string): string {
  writeFileSync(path.join(clone, `${message.replace(/\W+/g, "_")}.txt`), `${message}\n`);
  git(clone, "add", "-A");
  git(clone, "commit", "-q", "-m", message);
  return git(clone, "rev-parse", "HEAD");
}

/** Log lines kept in memory, so tests can assert what the service logged. */
export class MemoryLogger implements Logger {
  readonly records: { level: string; message: string; fields: LogFields }[] = [];
  debug(message: string, fields: LogFields = {}) {
    this.records.push({ level: "debug", message, fields });
  }
  info(message: string, fields: LogFields = {}) {
    this.records.push({ level: "info", message, fields });
  }
  warn(message: string, fields: LogFields = {}) {
    this.records.push({ level: "warn", message, fields });
  }
  error(message: string, fields: LogFields = {}) {
    this.records.push({ level: "error", message, fields });
  }
}

/** A service on an ephemeral 127.0.0.1 port with a client connected to it. */
export interface TestService {
  service: RunningService;
  client: GitEventServiceClient;
  channel: Channel;
  logger: MemoryLogger;
  stop(): Promise<void>;
}

/** Starts the real service in this process for the fixture's folders. */
export async function startTestService(fixture: Fixture, overrides: Partial<ServiceConfig> = {}): Promise<TestService> {
  const logger = new MemoryLogger();
  const service = await startService(
    {
      ...DEFAULT_CONFIG,
      root: fixture.root,
      dataDir: fixture.dataDir,
      listen: "127.0.0.1:0",
      pollIntervalMs: TEST_POLL_INTERVAL_MS,
      // Polling alone, so these tests cover the safety net; file
      // notifications have tests of their own with polling slowed down.
      fileNotifications: false,
      heartbeatIntervalMs: 1_000,
      ...overrides,
    },
    logger,
  );
  const channel = createChannel(`127.0.0.1:${service.port}`);
  const client = createClient(GitEventServiceDefinition, channel);
  return {
    service,
    client,
    channel,
    logger,
    async stop() {
      channel.close();
      await service.stop();
    },
  };
}

/**
 * Reads a Watch stream in the background and keeps every response, so a
 * test can wait for a condition with a deadline instead of sleeping.
 */
export class StreamRecorder {
  readonly responses: WatchResponse[] = [];
  /** The events received so far, initial-state ones included. */
  readonly events: GitEvent[] = [];
  error: unknown = undefined;
  ended = false;
  readonly #abort = new AbortController();
  readonly #done: Promise<void>;
  #notify: () => void = () => {};

  constructor(client: GitEventServiceClient, request: Partial<WatchRequest>) {
    this.#done = (async () => {
      try {
        for await (const response of client.watch(request, { signal: this.#abort.signal })) {
          this.responses.push(response);
          if (response.response?.$case === "event") this.events.push(response.response.value);
          this.#notify();
        }
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
        this.#notify();
      }
    })();
  }

  /** Waits until `condition` holds, failing after WAIT_MS with `description`. */
  async waitFor(description: string, condition: (recorder: StreamRecorder) => boolean): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!condition(this)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${WAIT_MS} ms waiting for ${description}; received ${JSON.stringify(this.events.map(summarize))}` +
            (this.error === undefined ? "" : `; stream error: ${String(this.error)}`),
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits for at least `count` events and returns the first `count`. */
  async waitForEvents(count: number): Promise<GitEvent[]> {
    await this.waitFor(`${count} events`, (recorder) => recorder.events.length >= count || recorder.ended);
    assertNoStreamError(this);
    return this.events.slice(0, count);
  }

  /** Cancels the call and waits until the reading loop has ended. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}

function assertNoStreamError(recorder: StreamRecorder): void {
  if (recorder.error !== undefined) throw recorder.error;
}

/** A short description of an event for failure messages. */
export function summarize(event: GitEvent): string {
  return `${event.sequence} ${event.repository} ${event.refName} type=${event.type}`;
}

/** Waits until the service's committed sequence reaches `sequence`. */
export async function waitForSequence(service: RunningService, sequence: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (service.store.sequence < sequence) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for sequence ${sequence}; the store is at ${service.store.sequence}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The JavaScript runtimes the built sources run on. */
export type Runtime = "node" | "deno";

/** The Deno 2 binary that the `deno` npm package installs. */
export const DENO_BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", ".bin", "deno");

/** Returns the command and arguments that run a built entry point on `runtime`. */
export function runtimeCommand(runtime: Runtime, entry: string, args: readonly string[]): [string, string[]] {
  return runtime === "node" ? [process.execPath, [entry, ...args]] : [DENO_BIN, ["run", "--allow-all", "--quiet", entry, ...args]];
}

/** The built server entry point, as `npm start` runs it. */
export const SERVER_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "server.js");

/** A server process with its stderr log lines parsed as JSON. */
export interface ServerProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  port: number;
  exited: Promise<number | null>;
}

/** Starts `node dist/server.js` with `args` and waits for its "server started" log line. */
export async function spawnServer(args: string[], runtime: Runtime = "node"): Promise<ServerProcess> {
  const child = spawn(...runtimeCommand(runtime, SERVER_ENTRY, args), { stdio: ["ignore", "pipe", "pipe"] });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const logs: Record<string, unknown>[] = [];
  let buffer = "";

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${WAIT_MS} ms: ${buffer}`)), WAIT_MS);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        const record = JSON.parse(line) as Record<string, unknown>;
        logs.push(record);
        if (record.message === "server started") {
          clearTimeout(timer);
          resolve(Number(String(record.listen).split(":").at(-1)));
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it started: ${buffer}`));
    });
  });
  return { child, logs, port, exited };
}
