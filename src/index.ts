export {
  backoffDelay,
  HeartbeatTimeoutError,
  isAbortError,
  isCursorOutOfRange,
  isTerminal,
  WATCH_DEFAULTS,
  WatchError,
  watchEvents,
  type RetryInfo,
  type WatchItem,
  type WatchOptions,
} from "./client.js";
export { createRouter, DEFAULT_RELEASE_TAG_PATTERN, type Decision, type RouterConfig } from "./router.js";
export { DEFAULT_CONFIG, parseConfig, type ServiceConfig } from "./config.js";
export { createJsonLogger, silentLogger, type Logger } from "./logger.js";
export { startService, type RunningService } from "./service.js";
export { GitEventType, ObjectFormat, ObjectType, RefKind, type GitEvent } from "./types.js";
export { GitEventServiceDefinition } from "./generated/gitstore/git/v1/events.js";
