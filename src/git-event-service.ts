import path from "node:path";

import { isAbortError } from "abort-controller-x";
import { ServerError, Status, type CallContext } from "nice-grpc";

import {
  type GitEventServiceImplementation,
  type ListRefsRequest,
  type ListRefsResponse,
  type ListRepositoriesResponse,
  type Ref,
  type WatchRequest,
  type WatchResponse,
} from "./generated/gitstore/git/v1/events.js";
import { GitCommandError, readObjectInfo } from "./git.js";
import type { Logger } from "./logger.js";
import { CursorOutOfRangeError, type RefStore } from "./ref-store.js";
import { compareBytes } from "./snapshot-diff.js";
import { GitEventType, ObjectType, RefKind, refKindOf, zeroOid, type GitEvent, type RepositorySnapshot } from "./types.js";
import { compileWatchFilter, InvalidRequestError, validateRepositoryName, type WatchFilter } from "./watch-filter.js";

/**
 * Events read from the store per step of a stream. A stream holds at most
 * one page in memory, because nice-grpc waits for the transport to drain
 * before it asks for the next message: a watcher that stops reading stalls
 * its own stream without making the server buffer more.
 */
const PAGE_EVENTS = 500;

/** Share of the heartbeat interval added or removed at random, so restarted watchers do not beat in step. */
const HEARTBEAT_JITTER = 0.1;

export interface GitEventServiceOptions {
  root: string;
  store: RefStore;
  /** Time without a message after which a stream sends a heartbeat, in milliseconds. */
  heartbeatIntervalMs: number;
  logger: Logger;
  /** Aborts every open stream with UNAVAILABLE, for shutdown. */
  shutdownSignal: AbortSignal;
}

/** Implements GitEventService on top of the ref store. */
export function createGitEventService(options: GitEventServiceOptions): GitEventServiceImplementation {
  const { store, logger } = options;
  let nextStreamId = 1;

  return {
    async *watch(request: WatchRequest, context: CallContext): AsyncIterable<WatchResponse> {
      const streamId = nextStreamId++;
      let filter: WatchFilter;
      try {
        filter = asServerError(() => compileWatchFilter(request));
        if (request.sendInitialState && request.afterSequence !== undefined) {
          throw new ServerError(
            Status.INVALID_ARGUMENT,
            `send_initial_state cannot be combined with after_sequence ${request.afterSequence}; set one of them`,
          );
        }
      } catch (error) {
        logger.warn("watch rejected", { streamId, peer: context.peer, error });
        throw error;
      }

      const signal = AbortSignal.any([context.signal, options.shutdownSignal]);
      logger.info("watch started", {
        streamId,
        peer: context.peer,
        afterSequence: request.afterSequence,
        sendInitialState: request.sendInitialState,
        repositories: request.repositories,
        refPatterns: request.refPatterns,
      });

      let sent = 0;
      try {
        let cursor: number;
        if (request.sendInitialState) {
          const state = store.state();
          for (const [repository, snapshot] of [...state.repositories].sort(([a], [b]) => compareBytes(a, b))) {
            if (!filter.includesRepository(repository)) continue;
            for (const event of await initialEvents(options.root, repository, snapshot, state.sequence, signal)) {
              if (!filter.matches(event)) continue;
              yield { response: { $case: "event", value: event } };
              sent += 1;
            }
          }
          yield { response: { $case: "initialStateComplete", value: { sequence: state.sequence } } };
          cursor = state.sequence;
        } else {
          cursor = request.afterSequence ?? store.sequence;
          store.checkCursor(cursor);
        }

        for await (const response of streamEvents(options, filter, cursor, signal)) {
          yield response;
          if (response.response?.$case === "event") sent += 1;
        }
      } catch (error) {
        if (options.shutdownSignal.aborted && isAbortError(error)) {
          throw new ServerError(Status.UNAVAILABLE, "the server is shutting down; reconnect and resume from your cursor");
        }
        const mapped = toServerError(error);
        if (mapped instanceof ServerError) {
          logger.warn("watch ended with an error", { streamId, code: Status[mapped.code], error: mapped });
        }
        throw mapped;
      } finally {
        logger.info("watch ended", { streamId, eventsSent: sent, cancelled: context.signal.aborted });
      }
    },

    async listRefs(request: ListRefsRequest, context: CallContext): Promise<ListRefsResponse> {
      asServerError(() => validateRepositoryName(request.repository));
      const state = store.state();
      const snapshot = state.repositories.get(request.repository);
      if (snapshot === undefined) {
        throw new ServerError(
          Status.NOT_FOUND,
          `repository ${JSON.stringify(request.repository)} not found under the root; call ListRepositories for the names`,
        );
      }

      let refs: Ref[];
      try {
        refs = await describeRefs(options.root, request.repository, snapshot, context.signal);
      } catch (error) {
        if (!(error instanceof GitCommandError)) throw error;
        // Removed after the last poll, which has not reported it yet.
        logger.warn("listing failed: git could not read the repository", { repository: request.repository, error });
        throw new ServerError(
          Status.NOT_FOUND,
          `repository ${JSON.stringify(request.repository)} could not be read and was probably removed; call ListRepositories`,
        );
      }
      return {
        repository: request.repository,
        objectFormat: snapshot.objectFormat,
        defaultBranch: snapshot.head ?? "",
        refs,
        sequence: state.sequence,
      };
    },

    async listRepositories(): Promise<ListRepositoriesResponse> {
      const state = store.state();
      const repositories = [...state.repositories]
        .sort(([a], [b]) => compareBytes(a, b))
        .map(([name, snapshot]) => ({
          name,
          objectFormat: snapshot.objectFormat,
          defaultBranch: snapshot.head ?? "",
          refCount: snapshot.refs.size,
        }));
      return { repositories, sequence: state.sequence };
    },
  };
}

/** Streams stored events after `cursor`, then live ones, with heartbeats while idle. */
async function* streamEvents(
  options: GitEventServiceOptions,
  filter: WatchFilter,
  start: number,
  signal: AbortSignal,
): AsyncGenerator<WatchResponse> {
  const { store, heartbeatIntervalMs } = options;
  let cursor = start;

  // A first heartbeat tells a watcher that started "from now" which
  // sequence that is, so it can resume without a gap if the stream drops
  // before the first event.
  yield { response: { $case: "heartbeat", value: { sequence: cursor, sentAt: new Date() } } };
  let nextHeartbeatAt = Date.now() + jittered(heartbeatIntervalMs);

  for (;;) {
    signal.throwIfAborted();
    const events = await store.read(cursor, PAGE_EVENTS);

    for (const event of events) {
      cursor = event.sequence;
      if (filter.matches(event)) {
        yield { response: { $case: "event", value: event } };
        nextHeartbeatAt = Date.now() + jittered(heartbeatIntervalMs);
      }
    }

    const waitMs = nextHeartbeatAt - Date.now();
    const caughtUp = events.length === 0;
    if (waitMs <= 0) {
      yield { response: { $case: "heartbeat", value: { sequence: cursor, sentAt: new Date() } } };
      nextHeartbeatAt = Date.now() + jittered(heartbeatIntervalMs);
    } else if (caughtUp) {
      await store.waitForSequence(cursor, waitMs, signal);
    }
  }
}

/** Builds the initial-state events of one repository for list-then-watch. */
async function initialEvents(
  root: string,
  repository: string,
  snapshot: RepositorySnapshot,
  sequence: number,
  signal: AbortSignal,
): Promise<GitEvent[]> {
  const absent = zeroOid(snapshot.objectFormat);
  const batchId = `initial-${sequence}`;
  const observedAt = new Date();
  const refs = await describeRefs(root, repository, snapshot, signal);
  const headRef = refs.find((ref) => ref.isDefaultBranch);

  const events: GitEvent[] = [
    {
      sequence,
      repository,
      refName: "HEAD",
      type: GitEventType.GIT_EVENT_TYPE_DEFAULT_BRANCH_CHANGED,
      oldOid: absent,
      newOid: snapshot.head === null ? absent : snapshot.refs.get(snapshot.head) ?? absent,
      batchId,
      refKind: refKindOf("HEAD"),
      objectType: headRef?.objectType ?? ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: headRef?.peeledOid ?? "",
      isDefaultBranch: false,
      objectFormat: snapshot.objectFormat,
      observedAt,
      oldTarget: "",
      newTarget: snapshot.head ?? "",
      batchSize: 0,
      batchIndex: 0,
      initial: true,
    },
  ];
  for (const ref of refs) {
    events.push({
      ...events[0]!,
      refName: ref.name,
      type: createdTypeOf(ref.name),
      newOid: ref.oid,
      refKind: ref.kind,
      objectType: ref.objectType,
      peeledOid: ref.peeledOid,
      isDefaultBranch: ref.isDefaultBranch,
      newTarget: "",
    });
  }
  return events.map((event, index) => ({ ...event, batchSize: events.length, batchIndex: index }));
}

function createdTypeOf(refName: string): GitEventType {
  switch (refKindOf(refName)) {
    case RefKind.REF_KIND_BRANCH:
      return GitEventType.GIT_EVENT_TYPE_BRANCH_CREATED;
    case RefKind.REF_KIND_TAG:
      return GitEventType.GIT_EVENT_TYPE_TAG_CREATED;
    default:
      return GitEventType.GIT_EVENT_TYPE_REF_CREATED;
  }
}

/** Lists the refs of a snapshot with their object types, in one cat-file call. */
async function describeRefs(
  root: string,
  repository: string,
  snapshot: RepositorySnapshot,
  signal: AbortSignal,
): Promise<Ref[]> {
  const info = await readObjectInfo(path.join(root, repository), snapshot.refs.values(), signal);
  return [...snapshot.refs]
    .sort(([a], [b]) => compareBytes(a, b))
    .map(([name, oid]) => ({
      name,
      oid,
      kind: refKindOf(name),
      objectType: info.get(oid)?.type ?? ObjectType.OBJECT_TYPE_UNSPECIFIED,
      peeledOid: info.get(oid)?.peeledOid ?? "",
      isDefaultBranch: name === snapshot.head,
    }));
}

function jittered(intervalMs: number): number {
  return intervalMs * (1 - HEARTBEAT_JITTER + 2 * HEARTBEAT_JITTER * Math.random());
}

/**
 * Runs `action` and throws the errors that describe a bad request as their
 * gRPC status. Other errors pass through unchanged.
 */
function asServerError<T>(action: () => T): T {
  try {
    return action();
  } catch (error) {
    throw toServerError(error);
  }
}

/** Maps InvalidRequestError to INVALID_ARGUMENT and CursorOutOfRangeError to OUT_OF_RANGE. */
function toServerError(error: unknown): unknown {
  if (error instanceof InvalidRequestError) return new ServerError(Status.INVALID_ARGUMENT, error.message);
  if (error instanceof CursorOutOfRangeError) return new ServerError(Status.OUT_OF_RANGE, error.message);
  return error;
}
