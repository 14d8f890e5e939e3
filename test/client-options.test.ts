import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { isAbortError } from "abort-controller-x";
import { ClientError, Status } from "nice-grpc";

import {
  backoffDelay,
  isCursorOutOfRange,
  isTerminal,
  watchEvents,
  WATCH_DEFAULTS,
  type WatchOptions,
} from "../src/client.js";

/** Nothing is expected to listen on port 1, so a watch that got past its checks would only retry. */
const UNREACHABLE_ADDRESS = "127.0.0.1:1";
const WATCH_PATH = "/gitstore.git.v1.GitEventService/Watch";
/**
 * Upper bound for a watch that wrongly accepts its options. Its signal then
 * ends the retry loop, so the test fails on the error type instead of hanging.
 */
const GUARD_TIMEOUT_MS = 5_000;

const NO_JITTER_SETTINGS = { initialBackoffMs: 100, maxBackoffMs: 1000, backoffMultiplier: 2, backoffJitter: 0 };

/**
 * Returns what the first next() of a watch rejects with, or fails the test
 * when it resolves. Also checks that the watch is finished afterwards.
 */
async function firstNextError(options: WatchOptions): Promise<unknown> {
  const watch = watchEvents(UNREACHABLE_ADDRESS, options);
  let item: IteratorResult<unknown> | undefined;
  let caught: unknown;
  try {
    item = await watch.next();
  } catch (error) {
    caught = error;
  }

  assert.equal(item, undefined, `expected the first next() to reject, got ${JSON.stringify(item)}`);
  assert.deepEqual(await watch.next(), { done: true, value: undefined });
  return caught;
}

function assertIncludes(message: string, fragment: string): void {
  assert.ok(message.includes(fragment), `message ${JSON.stringify(message)} lacks ${JSON.stringify(fragment)}`);
}

describe("backoffDelay", () => {
  test("zero jitter doubles until cap", () => {
    const expected = [100, 200, 400, 800, 1000, 1000, 1000];

    expected.forEach((delayMs, index) => {
      assert.equal(backoffDelay(NO_JITTER_SETTINGS, index + 1), delayMs, `attempt ${index + 1}`);
    });
  });

  test("multiplier three grows by three", () => {
    const settings = { ...NO_JITTER_SETTINGS, initialBackoffMs: 50, backoffMultiplier: 3 };
    const expected = [50, 150, 450, 1000];

    expected.forEach((delayMs, index) => {
      assert.equal(backoffDelay(settings, index + 1), delayMs, `attempt ${index + 1}`);
    });
  });

  test("multiplier one stays constant", () => {
    const settings = { ...NO_JITTER_SETTINGS, backoffMultiplier: 1 };

    for (let attempt = 1; attempt <= 10; attempt++) {
      assert.equal(backoffDelay(settings, attempt), 100, `attempt ${attempt}`);
    }
  });

  test("cap is reached exactly", () => {
    const settings = { ...NO_JITTER_SETTINGS, maxBackoffMs: 750 };

    assert.equal(backoffDelay(settings, 3), 400);
    assert.equal(backoffDelay(settings, 4), 750);
    assert.equal(backoffDelay(settings, 5), 750);
  });

  test("huge attempt stays at cap", () => {
    // 2 ** 9999 is Infinity, so the cap alone bounds the result.
    assert.equal(backoffDelay(NO_JITTER_SETTINGS, 10_000), 1000);
  });

  test("zero initial backoff stays zero", () => {
    const settings = { ...NO_JITTER_SETTINGS, initialBackoffMs: 0 };

    assert.equal(backoffDelay(settings, 1), 0);
    assert.equal(backoffDelay(settings, 1100), 0);
  });

  test("jitter stays within 20 percent", () => {
    const settings = { ...NO_JITTER_SETTINGS, backoffJitter: 0.2 };
    const bases = [100, 200, 400, 800, 1000, 1000];

    bases.forEach((base, index) => {
      const attempt = index + 1;
      const delays: number[] = [];
      for (let draw = 0; draw < 1000; draw++) delays.push(backoffDelay(settings, attempt));

      for (const delayMs of delays) {
        assert.ok(Number.isInteger(delayMs), `attempt ${attempt}: ${delayMs} is not a whole number`);
        assert.ok(delayMs >= base * 0.8, `attempt ${attempt}: ${delayMs} is below ${base * 0.8}`);
        assert.ok(delayMs <= base * 1.2, `attempt ${attempt}: ${delayMs} is above ${base * 1.2}`);
        assert.ok(delayMs <= settings.maxBackoffMs, `attempt ${attempt}: ${delayMs} is above the cap`);
      }

      // The chance that 1000 draws all land on one side of the base is about 2 ** -1000.
      assert.ok(Math.min(...delays) < base, `attempt ${attempt}: no delay below ${base}`);
      if (base < settings.maxBackoffMs) {
        assert.ok(Math.max(...delays) > base, `attempt ${attempt}: no delay above ${base}`);
      }
    });
  });
});

describe("WATCH_DEFAULTS", () => {
  test("defaults have documented values", () => {
    assert.deepEqual(WATCH_DEFAULTS, {
      initialBackoffMs: 250,
      maxBackoffMs: 30_000,
      backoffMultiplier: 2,
      backoffJitter: 0.2,
      heartbeatTimeoutMs: 45_000,
    });
  });

  test("default backoff starts at 250", () => {
    const settings = { ...WATCH_DEFAULTS, backoffJitter: 0 };

    assert.equal(backoffDelay(settings, 1), 250);
    assert.equal(backoffDelay(settings, 2), 500);
    assert.equal(backoffDelay(settings, 100), 30_000);
  });
});

describe("watchEvents option checks", () => {
  const invalidCases: { name: string; options: WatchOptions; fragments: string[] }[] = [
    { name: "negative initialBackoffMs", options: { initialBackoffMs: -1 }, fragments: ["initialBackoffMs", "got -1"] },
    { name: "NaN initialBackoffMs", options: { initialBackoffMs: Number.NaN }, fragments: ["initialBackoffMs", "got NaN"] },
    {
      name: "maxBackoffMs below initial",
      options: { initialBackoffMs: 500, maxBackoffMs: 100 },
      fragments: ["maxBackoffMs", "from 500", "got 100"],
    },
    {
      name: "infinite maxBackoffMs",
      options: { maxBackoffMs: Number.POSITIVE_INFINITY },
      fragments: ["maxBackoffMs", "got Infinity"],
    },
    { name: "backoffMultiplier below one", options: { backoffMultiplier: 0.5 }, fragments: ["backoffMultiplier", "got 0.5"] },
    { name: "backoffJitter above one", options: { backoffJitter: 1.5 }, fragments: ["backoffJitter", "got 1.5"] },
    { name: "zero heartbeatTimeoutMs", options: { heartbeatTimeoutMs: 0 }, fragments: ["heartbeatTimeoutMs", "got 0"] },
    { name: "negative afterSequence", options: { afterSequence: -1 }, fragments: ["afterSequence", "got -1"] },
    { name: "fractional afterSequence", options: { afterSequence: 1.5 }, fragments: ["afterSequence", "got 1.5"] },
    {
      name: "afterSequence with initialState",
      options: { afterSequence: 5, initialState: true },
      fragments: ["afterSequence 5", "initialState"],
    },
  ];

  for (const { name, options, fragments } of invalidCases) {
    test(`${name} is rejected`, async () => {
      const onRetryCalls: unknown[] = [];
      const error = await firstNextError({
        ...options,
        signal: AbortSignal.timeout(GUARD_TIMEOUT_MS),
        onRetry: (retry) => onRetryCalls.push(retry),
      });

      assert.ok(error instanceof RangeError, `expected RangeError, got ${String(error)}`);
      for (const fragment of fragments) assertIncludes(error.message, fragment);
      assert.equal(onRetryCalls.length, 0);
    });
  }

  // The signal is checked after the options, so an AbortError shows that
  // these values, each at the edge of its range, passed the checks.
  test("boundary values pass checks", async () => {
    const controller = new AbortController();
    controller.abort();

    const error = await firstNextError({
      initialBackoffMs: 0,
      maxBackoffMs: 0,
      backoffMultiplier: 1,
      backoffJitter: 1,
      heartbeatTimeoutMs: 1,
      afterSequence: 0,
      signal: controller.signal,
    });

    assert.ok(isAbortError(error), `expected AbortError, got ${String(error)}`);
  });

  test("initialState alone passes checks", async () => {
    const controller = new AbortController();
    controller.abort();

    const error = await firstNextError({ initialState: true, signal: controller.signal });

    assert.ok(isAbortError(error), `expected AbortError, got ${String(error)}`);
  });
});

describe("watchEvents abort signal", () => {
  test("aborted signal rejects first next", async () => {
    const controller = new AbortController();
    controller.abort();
    const onRetryCalls: unknown[] = [];

    const error = await firstNextError({ signal: controller.signal, onRetry: (retry) => onRetryCalls.push(retry) });

    assert.ok(isAbortError(error), `expected AbortError, got ${String(error)}`);
    assert.equal(onRetryCalls.length, 0);
  });

  // The signal option promises that aborting ends the iteration with an
  // AbortError, which holds for an abort during a call or a backoff wait.
  test("custom reason still gives AbortError", async () => {
    const controller = new AbortController();
    controller.abort(new Error("shutting down"));

    const error = await firstNextError({ signal: controller.signal });

    assert.ok(isAbortError(error), `expected AbortError, got ${String(error)}`);
  });
});

describe("error classification", () => {
  const statusCases: { status: Status; terminal: boolean; outOfRange: boolean }[] = [
    { status: Status.INVALID_ARGUMENT, terminal: true, outOfRange: false },
    { status: Status.UNIMPLEMENTED, terminal: true, outOfRange: false },
    { status: Status.UNAUTHENTICATED, terminal: true, outOfRange: false },
    { status: Status.PERMISSION_DENIED, terminal: true, outOfRange: false },
    { status: Status.NOT_FOUND, terminal: true, outOfRange: false },
    { status: Status.FAILED_PRECONDITION, terminal: true, outOfRange: false },
    { status: Status.UNAVAILABLE, terminal: false, outOfRange: false },
    { status: Status.RESOURCE_EXHAUSTED, terminal: false, outOfRange: false },
    { status: Status.INTERNAL, terminal: false, outOfRange: false },
    { status: Status.OUT_OF_RANGE, terminal: false, outOfRange: true },
  ];

  for (const { status, terminal, outOfRange } of statusCases) {
    test(`${Status[status]} is classified`, () => {
      const error = new ClientError(WATCH_PATH, status, "d");

      assert.equal(isTerminal(error), terminal);
      assert.equal(isCursorOutOfRange(error), outOfRange);
    });
  }

  test("plain Error is neither", () => {
    const error = new Error("d");

    assert.equal(isTerminal(error), false);
    assert.equal(isCursorOutOfRange(error), false);
  });

  test("status-like object is neither", () => {
    const error = { code: Status.OUT_OF_RANGE, details: "d" };

    assert.equal(isTerminal(error), false);
    assert.equal(isCursorOutOfRange(error), false);
  });
});
