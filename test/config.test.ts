import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConfigError, DEFAULT_CONFIG, parseConfig, parseListenAddress, usage, type ServiceConfig } from "../src/config.js";

/** Returns the ConfigError that `action` throws, failing the test when it throws anything else or nothing. */
function configErrorOf(action: () => unknown): ConfigError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`);
  assert.equal(caught.name, "ConfigError");
  return caught;
}

function assertIncludes(message: string, fragment: string): void {
  assert.ok(message.includes(fragment), `message ${JSON.stringify(message)} lacks ${JSON.stringify(fragment)}`);
}

/** Returns the parsed configuration, failing the test when --help made it null. */
function parse(argv: string[], env: Record<string, string | undefined> = {}): ServiceConfig {
  const config = parseConfig(argv, env);
  assert.ok(config !== null, "parseConfig returned null");
  return config;
}

describe("parseConfig", () => {
  test("no flags gives defaults", () => {
    const config = parse([]);

    assert.deepEqual(config, DEFAULT_CONFIG);
    assert.equal(config.root, "repositories");
    assert.equal(config.dataDir, "data");
    assert.equal(config.listen, "127.0.0.1:50051");
    assert.equal(config.pollIntervalMs, 1000);
    assert.equal(config.heartbeatIntervalMs, 15_000);
    assert.equal(config.retainedEvents, 100_000);
    assert.equal(config.logLevel, "info");
  });

  test("unrelated variables are ignored", () => {
    assert.deepEqual(parse([], { PATH: "/usr/bin", GITSTORE_UNKNOWN: "x" }), DEFAULT_CONFIG);
  });

  test("every flag sets its field", () => {
    const config = parse([
      "--root", "/srv/git",
      "--data-dir", "/var/lib/gitstore",
      "--listen", "0.0.0.0:7000",
      "--poll-interval", "250",
      "--heartbeat-interval", "5000",
      "--retained-events", "42",
      "--log-level", "debug",
    ]);

    assert.equal(config.root, "/srv/git");
    assert.equal(config.dataDir, "/var/lib/gitstore");
    assert.equal(config.listen, "0.0.0.0:7000");
    assert.equal(config.pollIntervalMs, 250);
    assert.equal(config.heartbeatIntervalMs, 5000);
    assert.equal(config.retainedEvents, 42);
    assert.equal(config.logLevel, "debug");
  });

  test("every variable sets its field", () => {
    const config = parse([], {
      GITSTORE_ROOT: "/srv/git",
      GITSTORE_DATA_DIR: "/var/lib/gitstore",
      GITSTORE_LISTEN: "0.0.0.0:7000",
      GITSTORE_POLL_INTERVAL_MS: "250",
      GITSTORE_HEARTBEAT_INTERVAL_MS: "5000",
      GITSTORE_RETAINED_EVENTS: "42",
      GITSTORE_LOG_LEVEL: "warn",
    });

    assert.equal(config.root, "/srv/git");
    assert.equal(config.dataDir, "/var/lib/gitstore");
    assert.equal(config.listen, "0.0.0.0:7000");
    assert.equal(config.pollIntervalMs, 250);
    assert.equal(config.heartbeatIntervalMs, 5000);
    assert.equal(config.retainedEvents, 42);
    assert.equal(config.logLevel, "warn");
  });

  test("flag overrides variable", () => {
    const config = parse(["--poll-interval", "20", "--root=/from/flag", "--log-level", "error"], {
      GITSTORE_POLL_INTERVAL_MS: "30",
      GITSTORE_ROOT: "/from/env",
      GITSTORE_LOG_LEVEL: "debug",
    });

    assert.equal(config.pollIntervalMs, 20);
    assert.equal(config.root, "/from/flag");
    assert.equal(config.logLevel, "error");
  });

  test("flag skips invalid variable", () => {
    const config = parse(["--retained-events", "7"], { GITSTORE_RETAINED_EVENTS: "not a number" });

    assert.equal(config.retainedEvents, 7);
  });

  test("variable used without flag", () => {
    const config = parse(["--root", "/from/flag"], { GITSTORE_DATA_DIR: "/from/env" });

    assert.equal(config.root, "/from/flag");
    assert.equal(config.dataDir, "/from/env");
    assert.equal(config.listen, DEFAULT_CONFIG.listen);
  });

  test("undefined variable keeps default", () => {
    assert.equal(parse([], { GITSTORE_ROOT: undefined }).root, "repositories");
  });

  test("parsing leaves defaults unchanged", () => {
    parse(["--root", "/elsewhere", "--poll-interval", "20"]);

    assert.equal(DEFAULT_CONFIG.root, "repositories");
    assert.equal(DEFAULT_CONFIG.pollIntervalMs, 1000);
  });

  test("minimum integers are accepted", () => {
    const config = parse(["--poll-interval", "10", "--heartbeat-interval", "100", "--retained-events", "1"]);

    assert.equal(config.pollIntervalMs, 10);
    assert.equal(config.heartbeatIntervalMs, 100);
    assert.equal(config.retainedEvents, 1);
  });

  test("help returns null", () => {
    assert.equal(parseConfig(["--help"], {}), null);
    assert.equal(parseConfig(["--root", "/srv/git", "--help"], {}), null);
  });

  test("help skips value checks", () => {
    assert.equal(parseConfig(["--help", "--poll-interval", "1"], { GITSTORE_LISTEN: "localhost" }), null);
  });

  const invalidIntegers = ["abc", "12abc", "-5", "1.5", "1e3", " 20", "", "99999999999999999999"];
  for (const value of invalidIntegers) {
    test(`integer flag ${JSON.stringify(value)} is rejected`, () => {
      const error = configErrorOf(() => parseConfig([`--poll-interval=${value}`], {}));

      assertIncludes(error.message, "--poll-interval");
      assertIncludes(error.message, JSON.stringify(value));
      assertIncludes(error.message, "at least 10");
    });
  }

  test("integer variable is checked", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_HEARTBEAT_INTERVAL_MS: "soon" }));

    assertIncludes(error.message, "GITSTORE_HEARTBEAT_INTERVAL_MS");
    assertIncludes(error.message, '"soon"');
  });

  const belowMinimum: ReadonlyArray<{ flag: string; value: string; minimum: number }> = [
    { flag: "--poll-interval", value: "9", minimum: 10 },
    { flag: "--heartbeat-interval", value: "99", minimum: 100 },
    { flag: "--retained-events", value: "0", minimum: 1 },
  ];
  for (const { flag, value, minimum } of belowMinimum) {
    test(`${flag} below minimum is rejected`, () => {
      const error = configErrorOf(() => parseConfig([flag, value], {}));

      assertIncludes(error.message, flag);
      assertIncludes(error.message, `"${value}"`);
      assertIncludes(error.message, `at least ${minimum}`);
    });
  }

  test("variable below minimum is rejected", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_RETAINED_EVENTS: "0" }));

    assertIncludes(error.message, "GITSTORE_RETAINED_EVENTS");
    assertIncludes(error.message, '"0"');
    assertIncludes(error.message, "at least 1");
  });

  test("unknown flag is rejected", () => {
    const error = configErrorOf(() => parseConfig(["--bogus", "1"], {}));

    assertIncludes(error.message, "--bogus");
    assertIncludes(error.message, "--help");
  });

  test("positional argument is rejected", () => {
    const error = configErrorOf(() => parseConfig(["extra"], {}));

    assertIncludes(error.message, "extra");
  });

  test("missing flag value is rejected", () => {
    const error = configErrorOf(() => parseConfig(["--listen"], {}));

    assertIncludes(error.message, "--listen");
  });

  test("invalid log level is rejected", () => {
    const error = configErrorOf(() => parseConfig(["--log-level", "WARN"], {}));

    assertIncludes(error.message, "--log-level");
    assertIncludes(error.message, '"WARN"');
    assertIncludes(error.message, "debug, info, warn, error");
  });

  test("invalid level variable is rejected", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_LOG_LEVEL: "verbose" }));

    assertIncludes(error.message, "GITSTORE_LOG_LEVEL");
    assertIncludes(error.message, '"verbose"');
  });

  test("blank string variable is rejected", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_ROOT: "  " }));

    assertIncludes(error.message, "GITSTORE_ROOT");
    assertIncludes(error.message, "empty");
  });

  test("empty string flag is rejected", () => {
    const error = configErrorOf(() => parseConfig(["--data-dir="], {}));

    assertIncludes(error.message, "--data-dir");
    assertIncludes(error.message, "empty");
  });

  const invalidListenAddresses = ["localhost", "1.2.3.4:99999", ":50", "1.2.3.4:65536", "host:port", "::1:50051"];
  for (const listen of invalidListenAddresses) {
    test(`listen ${JSON.stringify(listen)} is rejected`, () => {
      const error = configErrorOf(() => parseConfig(["--listen", listen], {}));

      assertIncludes(error.message, JSON.stringify(listen));
      assertIncludes(error.message, "HOST:PORT");
    });
  }

  test("listen error names flag", () => {
    const error = configErrorOf(() => parseConfig(["--listen", "localhost"], {}));

    assertIncludes(error.message, "--listen");
  });

  test("listen error names variable", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_LISTEN: "localhost" }));

    assertIncludes(error.message, "GITSTORE_LISTEN");
  });

  test("listen variable is checked", () => {
    const error = configErrorOf(() => parseConfig([], { GITSTORE_LISTEN: "1.2.3.4:99999" }));

    assertIncludes(error.message, '"1.2.3.4:99999"');
  });

  test("IPv6 listen is accepted", () => {
    assert.equal(parse(["--listen", "[::1]:50051"]).listen, "[::1]:50051");
  });
});

describe("parseListenAddress", () => {
  test("IPv4 address splits", () => {
    assert.deepEqual(parseListenAddress("127.0.0.1:50051"), { host: "127.0.0.1", port: 50051 });
  });

  test("host name splits", () => {
    assert.deepEqual(parseListenAddress("localhost:8080"), { host: "localhost", port: 8080 });
  });

  test("IPv6 keeps brackets", () => {
    assert.deepEqual(parseListenAddress("[::1]:50051"), { host: "[::1]", port: 50051 });
    assert.deepEqual(parseListenAddress("[::ffff:10.0.0.1]:1"), { host: "[::ffff:10.0.0.1]", port: 1 });
  });

  test("port bounds are accepted", () => {
    assert.equal(parseListenAddress("0.0.0.0:0").port, 0);
    assert.equal(parseListenAddress("0.0.0.0:65535").port, 65535);
  });

  const invalidAddresses = ["localhost", "1.2.3.4:99999", ":50", "1.2.3.4:65536", "1.2.3.4:", "[::1]", "[::1:50", "a b:1", "1.2.3.4:123456", ""];
  for (const listen of invalidAddresses) {
    test(`address ${JSON.stringify(listen)} is rejected`, () => {
      const error = configErrorOf(() => parseListenAddress(listen));

      assertIncludes(error.message, `invalid listen address ${JSON.stringify(listen)}`);
    });
  }
});

describe("usage", () => {
  const text = usage();

  test("usage lists flags and variables", () => {
    const flagDetails = [
      ["--root", "GITSTORE_ROOT"],
      ["--data-dir", "GITSTORE_DATA_DIR"],
      ["--listen", "GITSTORE_LISTEN"],
      ["--poll-interval", "GITSTORE_POLL_INTERVAL_MS"],
      ["--heartbeat-interval", "GITSTORE_HEARTBEAT_INTERVAL_MS"],
      ["--retained-events", "GITSTORE_RETAINED_EVENTS"],
      ["--log-level", "GITSTORE_LOG_LEVEL"],
      ["--help", "print this text"],
    ];
    for (const [flag, detail] of flagDetails) {
      assertIncludes(text, `  ${flag!} `);
      assertIncludes(text, detail!);
    }
  });

  test("usage shows defaults", () => {
    assertIncludes(text, 'env GITSTORE_ROOT, default "repositories"');
    assertIncludes(text, 'env GITSTORE_LISTEN, default "127.0.0.1:50051"');
    assertIncludes(text, "env GITSTORE_POLL_INTERVAL_MS, default 1000");
    assertIncludes(text, "env GITSTORE_RETAINED_EVENTS, default 100000");
    assertIncludes(text, 'env GITSTORE_LOG_LEVEL, default "info"');
  });
});
