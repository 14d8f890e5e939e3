import process from "node:process";

import { ConfigError, parseConfig, usage } from "./config.js";
import { createJsonLogger } from "./logger.js";
import { startService } from "./service.js";

/**
 * Runs the git-service event server until SIGTERM or SIGINT. Exit codes:
 * 0 after a clean stop, 1 when the server fails, 2 for invalid flags.
 */
async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (config === null) {
    process.stdout.write(usage() + "\n");
    return 0;
  }

  const logger = createJsonLogger({ level: config.logLevel });
  let service;
  try {
    service = await startService(config, logger);
  } catch (error) {
    logger.error("server failed to start", { error });
    return 1;
  }

  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  logger.info("signal received", { signal });
  await service.stop();
  return 0;
}

process.exitCode = await main();
