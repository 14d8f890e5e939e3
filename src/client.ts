import { delay, isAbortError, throwIfAborted } from "abort-controller-x";
import {
  ChannelCredentials,
  ClientError,
  createChannel,
  createClient,
  Status,
  type ChannelOptions,
} from "nice-grpc";

import { GitEventServiceDefinition, type WatchRequest } from "./generated/gitstore/git/v1/events.js";
import type { GitEvent, GitEventType } from "./types.js";

/** Reconnect and liveness defaults of watchEvents; each option overrides one. */
export const WATCH_DEFAULTS = {
  initialBackoffMs: 250,
  maxBackoffMs: 30_000,
  backoffMultiplier: 2,
  /** Share of each backoff added or removed at random, so clients restarted together spread out. */
  backoffJitter: 0.2,
  /** Three times the server's default heartbeat interval of 15 s. */
  heartbeatTimeoutMs: 45_000,
} as const;

export interface WatchOptions {
  /** Repository names relative to the server's root; empty or absent means all. */
  repositories?: string[];
  /** Git-style ref patterns such as "refs/heads/*"; empty or absent means all. */
  refPatterns?: string[];
  /** Event types to receive; empty or absent means all. */
  eventTypes?: GitEventType[];
  /**
   * The stored cursor: resume after this sequence. Absent means from now
   * on, unless `initialState` is set.
   */
  afterSequence?: number;
  /** Starts with the current refs (a resync item) and then streams changes. */
  initialState?: boolean;
  /** Ends the iteration with an AbortError and closes the connection. */
  signal?: AbortSignal;
  /** First wait before a reconnect, in milliseconds. */
  initialBackoffMs?: number;
  /** Maximum wait before a reconnect, in milliseconds. */
  maxBackoffMs?: number;
  /** Factor between two consecutive waits. */
  backoffMultiplier?: number;
  /** Share of each wait varied at random, from 0 to 1. */
  backoffJitter?: number;
  /** Time without any message after which the connection counts as dead, in milliseconds. */
  heartbeatTimeoutMs?: number;
  /** TLS credentials; insecure (plain text) when absent. */
  credentials?: ChannelCredentials;
  /** gRPC channel options, such as keepalive settings. */
  channelOptions?: ChannelOptions;
  /**
   * Called before each reconnect wait, so the caller can log it. The
   * library itself writes nothing.
   */
  onRetry?: (retry: RetryInfo) => void;
}

/** Details of one reconnect, passed to `onRetry`. */
export interface RetryInfo {
  /** Consecutive failed attempts, from 1. */
  attempt: number;
  delayMs: number;
  error: unknown;
  /** The cursor the next attempt resumes after; undefined before the first message. */
  cursor: number | undefined;
}

/** One item of a watch: an event, a heartbeat or a resynchronisation. Each carries the cursor to store. */
export type WatchItem =
  | { type: "event"; event: GitEvent; cursor: number }
  | { type: "heartbeat"; cursor: number }
  | {
      type: "resync";
      /** "initial" when asked for with `initialState`; "cursor_out_of_range" when the stored cursor was too old or too new. */
      reason: "initial" | "cursor_out_of_range";
      /** Current refs of each matching repository, as initial-state events. */
      events: GitEvent[];
      /** The server's reason for a resync after OUT_OF_RANGE; empty for "initial". */
      message: string;
      cursor: number;
    };

/** A watch that ended because retrying cannot help; `code` is the gRPC status. */
export class WatchError extends Error {
  constructor(
    readonly code: Status,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`watch failed with ${Status[code]}: ${details}`, options);
    this.name = "WatchError";
  }
}

/** Thrown inside the client when no message arrived within the heartbeat timeout. */
export class HeartbeatTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no message from the server for ${timeoutMs} ms; the connection is presumed dead`);
    this.name = "HeartbeatTimeoutError";
  }
}

/** Statuses that end the watch: the request or the credentials must change first. */
const TERMINAL_STATUSES: ReadonlySet<Status> = new Set([
  Status.INVALID_ARGUMENT,
  Status.UNIMPLEMENTED,
  Status.UNAUTHENTICATED,
  Status.PERMISSION_DENIED,
  Status.NOT_FOUND,
  Status.FAILED_PRECONDITION,
]);

/** Returns true when an error of a watch call ends the watch rather than causing a reconnect. */
export function isTerminal(error: unknown): boolean {
  return error instanceof ClientError && TERMINAL_STATUSES.has(error.code);
}

/** Returns true when an error of a watch call means the cursor is out of range, so list-then-watch is needed. */
export function isCursorOutOfRange(error: unknown): boolean {
  return error instanceof ClientError && error.code === Status.OUT_OF_RANGE;
}

/**
 * Watches ref-change events as an async iterable that survives disconnects.
 *
 * It reconnects after any retryable failure (UNAVAILABLE, a dropped
 * connection, a server restart, a missed heartbeat) with capped,
 * exponential, jittered backoff. The backoff resets once a stream delivers
 * an event or a second message. Each reconnect resumes after the last item
 * yielded, so the caller sees no gap and no duplicate. When the cursor is out of range it yields a
 * resync with the current refs and continues from there. Terminal statuses
 * end the iteration with WatchError. Breaking out of the loop or aborting
 * the signal closes the call and the channel.
 */
export async function* watchEvents(address: string, options: WatchOptions = {}): AsyncGenerator<WatchItem, void, undefined> {
  const settings = checkOptions(options);
  const signal = options.signal ?? new AbortController().signal;
  // Throws AbortError whatever the signal's reason, as every later wait does.
  throwIfAborted(signal);

  const channel = createChannel(address, options.credentials ?? ChannelCredentials.createInsecure(), options.channelOptions);
  const client = createClient(GitEventServiceDefinition, channel);

  let cursor = options.afterSequence;
  let resyncReason: "initial" | "cursor_out_of_range" | null = options.initialState === true ? "initial" : null;
  let resyncMessage = "";
  let failedAttempts = 0;

  try {
    for (;;) {
      const request: WatchRequest = {
        repositories: options.repositories ?? [],
        refPatterns: options.refPatterns ?? [],
        eventTypes: options.eventTypes ?? [],
        afterSequence: resyncReason === null ? cursor : undefined,
        sendInitialState: resyncReason !== null,
      };
      const call = new AbortController();
      const onAbort = () => call.abort(signal.reason);
      signal.addEventListener("abort", onAbort);
      const watchdog = new Watchdog(settings.heartbeatTimeoutMs, () => call.abort(new HeartbeatTimeoutError(settings.heartbeatTimeoutMs)));

      let initialEvents: GitEvent[] = [];
      let messages = 0;
      try {
        watchdog.start();
        for await (const { response } of client.watch(request, { signal: call.signal })) {
          watchdog.stop();
          // The first heartbeat comes at once, even from a server that fails
          // right after it, so only what follows proves the stream healthy.
          messages += 1;
          if (messages > 1 || response?.$case === "event") failedAttempts = 0;

          let item: WatchItem | null = null;
          switch (response?.$case) {
            case "event": {
              const event = response.value;
              if (event.initial) {
                initialEvents.push(event);
              } else if (cursor === undefined || event.sequence > cursor) {
                cursor = event.sequence;
                item = { type: "event", event, cursor };
              }
              break;
            }
            case "heartbeat":
              cursor = Math.max(cursor ?? 0, response.value.sequence);
              item = { type: "heartbeat", cursor };
              break;
            case "initialStateComplete":
              cursor = response.value.sequence;
              item = { type: "resync", reason: resyncReason ?? "initial", events: initialEvents, message: resyncMessage, cursor };
              initialEvents = [];
              resyncReason = null;
              resyncMessage = "";
              break;
            case undefined:
              break;
          }

          // The watchdog measures the server, not the caller, so it is off
          // while the caller processes the item.
          if (item !== null) yield item;
          watchdog.start();
        }
        throw new ClientError("/gitstore.git.v1.GitEventService/Watch", Status.UNAVAILABLE, "the server ended the stream");
      } catch (caught) {
        if (signal.aborted) throw caught;
        const error = call.signal.aborted && call.signal.reason instanceof HeartbeatTimeoutError ? call.signal.reason : caught;

        if (isCursorOutOfRange(error)) {
          resyncReason = "cursor_out_of_range";
          resyncMessage = (error as ClientError).details;
          continue;
        }
        if (isTerminal(error)) {
          const clientError = error as ClientError;
          throw new WatchError(clientError.code, clientError.details, { cause: error });
        }

        failedAttempts += 1;
        const delayMs = backoffDelay(settings, failedAttempts);
        options.onRetry?.({ attempt: failedAttempts, delayMs, error, cursor });
        await delay(signal, delayMs);
      } finally {
        watchdog.stop();
        signal.removeEventListener("abort", onAbort);
        call.abort();
      }
    }
  } finally {
    channel.close();
  }
}

interface BackoffSettings {
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
  backoffJitter: number;
  heartbeatTimeoutMs: number;
}

/** Returns the wait before reconnect attempt `attempt` (from 1), in milliseconds. */
export function backoffDelay(settings: Omit<BackoffSettings, "heartbeatTimeoutMs">, attempt: number): number {
  // The power overflows to Infinity after about a thousand attempts, and
  // 0 * Infinity is NaN, so a zero initial backoff stays zero explicitly.
  const growth = settings.backoffMultiplier ** (attempt - 1);
  const base = settings.initialBackoffMs === 0 ? 0 : Math.min(settings.maxBackoffMs, settings.initialBackoffMs * growth);
  const jitter = 1 + settings.backoffJitter * (2 * Math.random() - 1);
  return Math.round(Math.min(settings.maxBackoffMs, base * jitter));
}

function checkOptions(options: WatchOptions): BackoffSettings {
  const settings: BackoffSettings = {
    initialBackoffMs: options.initialBackoffMs ?? WATCH_DEFAULTS.initialBackoffMs,
    maxBackoffMs: options.maxBackoffMs ?? WATCH_DEFAULTS.maxBackoffMs,
    backoffMultiplier: options.backoffMultiplier ?? WATCH_DEFAULTS.backoffMultiplier,
    backoffJitter: options.backoffJitter ?? WATCH_DEFAULTS.backoffJitter,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? WATCH_DEFAULTS.heartbeatTimeoutMs,
  };

  const requireNumber = (name: string, value: number, minimum: number, maximum = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isFinite(value) || value < minimum || value > maximum) {
      throw new RangeError(`${name} must be a number from ${minimum} to ${maximum}, got ${value}`);
    }
  };
  requireNumber("initialBackoffMs", settings.initialBackoffMs, 0);
  requireNumber("maxBackoffMs", settings.maxBackoffMs, settings.initialBackoffMs);
  requireNumber("backoffMultiplier", settings.backoffMultiplier, 1);
  requireNumber("backoffJitter", settings.backoffJitter, 0, 1);
  requireNumber("heartbeatTimeoutMs", settings.heartbeatTimeoutMs, 1);

  if (options.afterSequence !== undefined && (!Number.isSafeInteger(options.afterSequence) || options.afterSequence < 0)) {
    throw new RangeError(`afterSequence must be a whole number of at least 0, got ${options.afterSequence}`);
  }
  if (options.afterSequence !== undefined && options.initialState === true) {
    throw new RangeError(`afterSequence ${options.afterSequence} cannot be combined with initialState; set one of them`);
  }
  return settings;
}

/** A restartable timer that calls `onTimeout` once when not stopped in time. */
class Watchdog {
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: () => void,
  ) {}

  start(): void {
    this.stop();
    this.#timer = setTimeout(this.onTimeout, this.timeoutMs);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export { isAbortError };
