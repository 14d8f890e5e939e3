import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";

import { createServer, type Server } from "nice-grpc";

import { parseListenAddress, type ServiceConfig } from "./config.js";
import { GitEventServiceDefinition } from "./generated/gitstore/git/v1/events.js";
import { createGitEventService } from "./git-event-service.js";
import type { Logger } from "./logger.js";
import { RefStore } from "./ref-store.js";
import { RefsWatcher } from "./refs-watcher.js";

/** Time that open calls get to end on stop before they are cancelled, in milliseconds. */
const SHUTDOWN_GRACE_MS = 5_000;

/** A running git-service event server. */
export interface RunningService {
  /** The port the server listens on; the real one when the config asked for port 0. */
  port: number;
  store: RefStore;
  watcher: RefsWatcher;
  /** Ends every stream with UNAVAILABLE, stops polling and flushes the data folder. */
  stop(): Promise<void>;
}

/**
 * Opens the data folder, records the current state of the repositories and
 * starts serving GitEventService.
 */
export async function startService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  const { host, port: requestedPort } = parseListenAddress(config.listen);
  const root = path.resolve(config.root);
  const dataDir = path.resolve(config.dataDir);
  await createFolder(dataDir, "--data-dir");
  const store = await RefStore.open({ dataDir, retainedEvents: config.retainedEvents, logger });

  // A missing root with recorded repositories is most likely a typo in
  // --root or an unmounted volume: polling it would report every
  // repository as deleted.
  if (!existsSync(root) && store.state().repositories.size > 0) {
    await store.close();
    throw new Error(
      `repository root ${root} does not exist, but the data folder ${dataDir} records ` +
        `${store.state().repositories.size} repositories; fix --root or mount the volume`,
    );
  }
  await createFolder(root, "--root");

  logger.info("data folder opened", {
    dataDir,
    sequence: store.sequence,
    oldestSequence: store.oldestSequence,
    repositories: store.state().repositories.size,
  });

  const watcher = new RefsWatcher({
    root,
    store,
    pollIntervalMs: config.pollIntervalMs,
    fileNotifications: config.fileNotifications,
    logger,
  });
  await watcher.start();

  const shutdown = new AbortController();
  const server: Server = createServer({
    // Ping idle connections so that a watcher whose host vanished is
    // noticed and its stream released.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
  });
  server.add(
    GitEventServiceDefinition,
    createGitEventService({
      root,
      store,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      logger,
      shutdownSignal: shutdown.signal,
    }),
  );

  let port: number;
  try {
    port = await server.listen(`${host}:${requestedPort}`);
  } catch (error) {
    await watcher.stop();
    await store.close();
    throw new Error(`cannot listen on ${config.listen}: ${(error as Error).message}; choose another --listen address`, {
      cause: error,
    });
  }
  logger.info("server started", { listen: `${host}:${port}`, root, dataDir, sequence: store.sequence });

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      logger.info("server stopping", { sequence: store.sequence });
      shutdown.abort();
      await watcher.stop();

      const grace = setTimeout(() => server.forceShutdown(), SHUTDOWN_GRACE_MS);
      try {
        await server.shutdown();
      } finally {
        clearTimeout(grace);
      }

      await store.close();
      logger.info("server stopped", { sequence: store.sequence });
    })();
    return stopping;
  };

  return { port, store, watcher, stop };
}

/** Creates a folder of a setting, with an error that names the setting. */
async function createFolder(folder: string, flag: string): Promise<void> {
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw new Error(`cannot create the ${flag} folder ${folder}: ${(error as Error).message}; choose a folder path`, {
      cause: error,
    });
  }
}
