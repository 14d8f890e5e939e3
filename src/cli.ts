#!/usr/bin/env node
import process from "node:process";
import { parseArgs } from "node:util";

import { isAbortError } from "abort-controller-x";

import { watchEvents, WatchError, type WatchItem } from "./client.js";
import { GitEvent } from "./generated/gitstore/git/v1/events.js";
import { createRouter, DEFAULT_RELEASE_TAG_PATTERN, type Decision } from "./router.js";
import { GitEventType, KNOWN_EVENT_TYPES } from "./types.js";
import { InvalidRequestError } from "./watch-filter.js";

const USAGE = `Usage: gitstore-events watch [options]

Streams ref-change events from a git-service and prints each one with the
API's decision. Reconnects and resumes on its own; says so on stderr.

Options:
  --server HOST:PORT     server address (default 127.0.0.1:50051)
  --repository NAME      only this repository, such as acme/catalog.git; repeatable
  --ref PATTERN          only refs matching this pattern, such as refs/tags/v*; repeatable
  --type TYPE            only this event type, such as TAG_CREATED; repeatable
  --after SEQUENCE       resume after this sequence (default: from now on)
  --initial-state        print the current refs first, then changes
  --release-tags GLOB    tag names that are releases (default ${DEFAULT_RELEASE_TAG_PATTERN})
  --json                 one JSON object per line (NDJSON) instead of text
  --help                 print this text

Exit codes: 0 on SIGINT or SIGTERM, 1 when the watch fails (including filters
the server rejects as invalid), 2 for invalid options.`;

/** An invalid command line; the message names the option and the value. */
class UsageError extends Error {}

/** Runs the watch command; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseCommandLine(argv);
  } catch (error) {
    if (error instanceof UsageError || error instanceof InvalidRequestError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (options === null) {
    process.stdout.write(USAGE + "\n");
    return 0;
  }

  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  try {
    for await (const item of watchEvents(options.server, {
      ...options.watch,
      signal: abort.signal,
      onRetry: ({ attempt, delayMs, error, cursor }) => {
        process.stderr.write(
          `reconnecting to ${options.server} in ${delayMs} ms (attempt ${attempt}, resuming after ${cursor ?? "now"}): ${describe(error)}\n`,
        );
      },
    })) {
      printItem(item, options.route, options.json);
    }
    return 0;
  } catch (error) {
    if (isAbortError(error)) return 0;
    process.stderr.write(`error: ${error instanceof WatchError ? error.message : describe(error)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

interface CommandLine {
  server: string;
  json: boolean;
  route: (event: GitEvent) => Decision;
  watch: {
    repositories: string[];
    refPatterns: string[];
    eventTypes: GitEventType[];
    afterSequence?: number;
    initialState: boolean;
  };
}

function parseCommandLine(argv: readonly string[]): CommandLine | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: "string", default: "127.0.0.1:50051" },
        repository: { type: "string", multiple: true, default: [] },
        ref: { type: "string", multiple: true, default: [] },
        type: { type: "string", multiple: true, default: [] },
        after: { type: "string" },
        "initial-state": { type: "boolean", default: false },
        "release-tags": { type: "string", default: DEFAULT_RELEASE_TAG_PATTERN },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; run gitstore-events --help for the options`);
  }

  const { values, positionals } = parsed;
  if (values.help) return null;
  if (positionals.length !== 1 || positionals[0] !== "watch") {
    throw new UsageError(`unknown command ${JSON.stringify(positionals.join(" "))}; the command is "gitstore-events watch"`);
  }

  let afterSequence: number | undefined;
  if (values.after !== undefined) {
    afterSequence = Number(values.after);
    if (!/^\d+$/.test(values.after) || !Number.isSafeInteger(afterSequence)) {
      throw new UsageError(`--after has invalid value ${JSON.stringify(values.after)}; use a sequence number such as 0 or 42`);
    }
    if (values["initial-state"]) {
      throw new UsageError("--after cannot be combined with --initial-state; use one of them");
    }
  }

  return {
    server: values.server,
    json: values.json,
    route: createRouter({ releaseTagPattern: values["release-tags"] }),
    watch: {
      repositories: values.repository,
      refPatterns: values.ref,
      eventTypes: values.type.map(parseEventType),
      ...(afterSequence === undefined ? {} : { afterSequence }),
      initialState: values["initial-state"],
    },
  };
}

/** Accepts "TAG_CREATED", "tag_created" or "GIT_EVENT_TYPE_TAG_CREATED". */
function parseEventType(text: string): GitEventType {
  const name = text.toUpperCase().replace(/^GIT_EVENT_TYPE_/, "");
  const value = GitEventType[`GIT_EVENT_TYPE_${name}` as keyof typeof GitEventType];
  if (typeof value !== "number" || !KNOWN_EVENT_TYPES.has(value)) {
    const names = [...KNOWN_EVENT_TYPES].map(shortTypeName).join(", ");
    throw new UsageError(`--type has invalid value ${JSON.stringify(text)}; use one of ${names}`);
  }
  return value;
}

function printItem(item: WatchItem, route: (event: GitEvent) => Decision, json: boolean): void {
  switch (item.type) {
    case "event":
      writeEvent(item.event, route(item.event), json);
      return;
    case "resync":
      for (const event of item.events) writeEvent(event, route(event), json);
      if (json) {
        process.stdout.write(JSON.stringify({ resync: { reason: item.reason, cursor: item.cursor, message: item.message } }) + "\n");
      } else {
        process.stdout.write(`-- resync (${item.reason}): current state at sequence ${item.cursor}, live changes follow\n`);
      }
      return;
    case "heartbeat":
      return;
  }
}

function writeEvent(event: GitEvent, decision: Decision, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ event: GitEvent.toJSON(event), decision }) + "\n");
    return;
  }
  const change = `${shortOid(event.oldOid)}..${shortOid(event.newOid)}`;
  const target = event.newTarget === "" ? "" : ` -> ${event.newTarget}`;
  const verdict = decision.action === "ignore" ? `ignore (${decision.reason})` : describeDecision(decision);
  process.stdout.write(
    `#${event.sequence} ${event.repository} ${event.refName || "-"} ${shortTypeName(event.type)} ${change}${target} => ${verdict}\n`,
  );
}

function describeDecision(decision: Exclude<Decision, { action: "ignore" }>): string {
  return decision.action === "retract" ? "retract" : `${decision.action} ${shortOid(decision.commit)}`;
}

function shortTypeName(type: GitEventType): string {
  return GitEventType[type].replace(/^GIT_EVENT_TYPE_/, "");
}

function shortOid(oid: string): string {
  return oid.slice(0, 12);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

process.exitCode = await main(process.argv.slice(2));
