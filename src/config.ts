import { parseArgs } from "node:util";

import type { LogLevel } from "./logger.js";

/** Settings of the git-service event server. */
export interface ServiceConfig {
  /** Folder of the bare repositories to watch; created when missing. */
  root: string;
  /** Folder of the event journal and snapshots; created when missing. */
  dataDir: string;
  /** Host and port to listen on, such as "127.0.0.1:50051" or "[::1]:0". */
  listen: string;
  pollIntervalMs: number;
  /** Whether file notifications trigger snapshots between polls. */
  fileNotifications: boolean;
  heartbeatIntervalMs: number;
  /** Minimum number of events kept for replay by cursor. */
  retainedEvents: number;
  logLevel: LogLevel;
}

/** The embedded defaults; each flag and variable below overrides one. */
export const DEFAULT_CONFIG: ServiceConfig = {
  root: "repositories",
  dataDir: "data",
  listen: "127.0.0.1:50051",
  pollIntervalMs: 1000,
  fileNotifications: true,
  heartbeatIntervalMs: 15_000,
  retainedEvents: 100_000,
  logLevel: "info",
};

/** An invalid flag or variable; the message names it, its value and the fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

interface Setting {
  flag: string;
  env: string;
  key: keyof ServiceConfig;
  /** Placeholder for the value in the usage text. */
  value: string;
  kind: "string" | "integer" | "level" | "listen" | "boolean";
  /** Smallest accepted value of an integer setting. */
  minimum?: number;
  help: string;
}

const SETTINGS: readonly Setting[] = [
  {
    flag: "root",
    env: "GITSTORE_ROOT",
    key: "root",
    value: "DIR",
    kind: "string",
    help: "folder of the bare repositories to watch, searched 8 levels deep; created when missing on a first start",
  },
  {
    flag: "data-dir",
    env: "GITSTORE_DATA_DIR",
    key: "dataDir",
    value: "DIR",
    kind: "string",
    help: "folder of the event journal and snapshots; created when missing",
  },
  { flag: "listen", env: "GITSTORE_LISTEN", key: "listen", value: "HOST:PORT", kind: "listen", help: "HOST:PORT to serve gRPC on; port 0 picks a free port" },
  {
    flag: "poll-interval",
    env: "GITSTORE_POLL_INTERVAL_MS",
    key: "pollIntervalMs",
    value: "MS",
    kind: "integer",
    minimum: 10,
    help: "milliseconds between two polls of every repository",
  },
  {
    flag: "file-notifications",
    env: "GITSTORE_FILE_NOTIFICATIONS",
    key: "fileNotifications",
    value: "BOOL",
    kind: "boolean",
    help: "true to snapshot a repository as soon as its refs change on disk, false to rely on polling",
  },
  {
    flag: "heartbeat-interval",
    env: "GITSTORE_HEARTBEAT_INTERVAL_MS",
    key: "heartbeatIntervalMs",
    value: "MS",
    kind: "integer",
    minimum: 100,
    help: "milliseconds of idle stream before a heartbeat is sent",
  },
  {
    flag: "retained-events",
    env: "GITSTORE_RETAINED_EVENTS",
    key: "retainedEvents",
    value: "N",
    kind: "integer",
    minimum: 1,
    help: "minimum number of events kept for replay by cursor",
  },
  { flag: "log-level", env: "GITSTORE_LOG_LEVEL", key: "logLevel", value: "LEVEL", kind: "level", help: "debug, info, warn or error" },
];

const LOG_LEVELS: readonly string[] = ["debug", "info", "warn", "error"];

/** Returns the usage text of the server command. */
export function usage(): string {
  const lines = SETTINGS.map(
    (setting) =>
      `  ${`--${setting.flag} ${setting.value}`.padEnd(30)} ${setting.help}\n` +
      `  ${"".padEnd(30)} env ${setting.env}, default ${JSON.stringify(DEFAULT_CONFIG[setting.key])}`,
  );
  return ["Usage: node dist/server.js [options]", "", "Options (a flag overrides its environment variable):", ...lines, `  ${"--help".padEnd(30)} print this text`].join("\n");
}

/**
 * Reads the configuration from flags, then environment variables, then
 * the defaults. Throws ConfigError for an unknown flag or an invalid value.
 * Returns null when --help was given.
 */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined>): ServiceConfig | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        help: { type: "boolean" },
        ...Object.fromEntries(SETTINGS.map((setting) => [setting.flag, { type: "string" as const }])),
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}; run with --help for the options`);
  }
  if (parsed.values.help === true) return null;

  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const setting of SETTINGS) {
    const fromFlag = (parsed.values as Record<string, string | boolean | undefined>)[setting.flag];
    const raw = typeof fromFlag === "string" ? fromFlag : env[setting.env];
    if (raw === undefined) continue;
    const source = typeof fromFlag === "string" ? `--${setting.flag}` : setting.env;
    config[setting.key] = parseValue(setting, raw, source);
  }

  return config as unknown as ServiceConfig;
}

function parseValue(setting: Setting, raw: string, source: string): string | number | boolean {
  switch (setting.kind) {
    case "string":
      if (raw.trim() === "") throw new ConfigError(`${source} is empty; give a value (${setting.help})`);
      return raw;
    case "boolean":
      if (raw !== "true" && raw !== "false") {
        throw new ConfigError(`${source} has invalid value ${JSON.stringify(raw)}; use true or false (${setting.help})`);
      }
      return raw === "true";
    case "listen":
      try {
        parseListenAddress(raw);
      } catch (error) {
        throw new ConfigError(`${source}: ${(error as Error).message}`);
      }
      return raw;
    case "level":
      if (!LOG_LEVELS.includes(raw)) throw new ConfigError(`${source} has invalid value ${JSON.stringify(raw)}; use one of ${LOG_LEVELS.join(", ")}`);
      return raw;
    case "integer": {
      const value = Number(raw);
      const minimum = setting.minimum ?? 0;
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < minimum) {
        throw new ConfigError(`${source} has invalid value ${JSON.stringify(raw)}; use a whole number of at least ${minimum} (${setting.help})`);
      }
      return value;
    }
  }
}

/** Splits "host:port" or "[v6]:port"; throws ConfigError naming the value. */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) {
    throw new ConfigError(`invalid listen address ${JSON.stringify(listen)}; use HOST:PORT such as 127.0.0.1:50051 or [::1]:50051`);
  }
  return { host: match[1]!, port };
}
