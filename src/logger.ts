/** Field values of one structured log line. */
export type LogFields = Record<string, unknown>;

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Creates a logger that writes one JSON object per line to `write`, with the
 * time, level, message and fields. Errors in fields become their name,
 * message and code, never their stack, so that lines stay one line.
 */
export function createJsonLogger(options: {
  level?: LogLevel;
  write?: (line: string) => void;
} = {}): Logger {
  const minimum = LEVEL_RANK[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line));

  const log = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (LEVEL_RANK[level] < minimum) return;
    const record: LogFields = { time: new Date().toISOString(), level, message };
    for (const [key, value] of Object.entries(fields)) {
      record[key] = value instanceof Error ? describeError(value) : value;
    }
    write(JSON.stringify(record) + "\n");
  };

  return {
    debug: (message, fields) => log("debug", message, fields),
    info: (message, fields) => log("info", message, fields),
    warn: (message, fields) => log("warn", message, fields),
    error: (message, fields) => log("error", message, fields),
  };
}

/** A logger that drops everything, for library callers that pass none. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

function describeError(error: Error): LogFields {
  const code = (error as { code?: unknown }).code;
  return { name: error.name, message: error.message, ...(code === undefined ? {} : { code }) };
}
