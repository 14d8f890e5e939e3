import { execa, ExecaError } from "execa";

import {
  ObjectType,
  oidLength,
  parseObjectFormat,
  parseObjectType,
  type ObjectFormat,
  type RepositorySnapshot,
} from "./types.js";

/** Largest output read from one git call: a snapshot of several million refs. */
const MAX_GIT_OUTPUT_BYTES = 1024 * 1024 * 1024;

/** Type and peeled id of one object, as `git cat-file --batch-check` reports them. */
export interface ObjectInfo {
  type: ObjectType;
  /** The object the id peels to (`<oid>^{}`); empty when the object is missing. */
  peeledOid: string;
}

/** A git command that exited with an error. `stderr` contains git's message. */
export class GitCommandError extends Error {
  constructor(
    readonly gitDir: string,
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super(`git ${args.join(" ")} failed in ${gitDir} (exit code ${exitCode ?? "none"}): ${stderr.trim()}`);
    this.name = "GitCommandError";
  }
}

interface RunGitOptions {
  signal?: AbortSignal | undefined;
  input?: string;
  /** Exit codes that are results rather than failures, such as 1 for "no". */
  allowedExitCodes?: readonly number[];
}

/**
 * Runs git against a bare repository and returns its exit code and output.
 * Throws GitCommandError for any other exit code, and the signal's reason
 * when the signal aborts.
 */
export async function runGit(
  gitDir: string,
  args: readonly string[],
  options: RunGitOptions = {},
): Promise<{ exitCode: number; stdout: string }> {
  options.signal?.throwIfAborted();

  try {
    const result = await execa("git", ["--git-dir", gitDir, ...args], {
      cancelSignal: options.signal,
      input: options.input,
      maxBuffer: MAX_GIT_OUTPUT_BYTES,
      stripFinalNewline: false,
      reject: false,
      // execa's cleanup hooks signals through signal-exit, which under Deno
      // re-raises SIGTERM past the server's own handler. A git call left
      // running at exit ends by itself within moments, and the abort signal
      // already stops calls on shutdown.
      cleanup: false,
      // Never ask for credentials or open an editor from a service process.
      env: { GIT_TERMINAL_PROMPT: "0", GIT_EDITOR: "true", LC_ALL: "C" },
    });

    if (result.isCanceled) {
      options.signal?.throwIfAborted();
    }

    const exitCode = result.exitCode ?? -1;
    if (exitCode === 0 || options.allowedExitCodes?.includes(exitCode)) {
      return { exitCode, stdout: result.stdout };
    }
    throw new GitCommandError(gitDir, args, result.exitCode, String(result.stderr || result.message));
  } catch (error) {
    if (error instanceof ExecaError) {
      throw new GitCommandError(gitDir, args, error.exitCode, error.shortMessage);
    }
    throw error;
  }
}

/** Reads the object format of a repository: sha1 or sha256. */
export async function readObjectFormat(gitDir: string, signal?: AbortSignal): Promise<ObjectFormat> {
  const { stdout } = await runGit(gitDir, ["rev-parse", "--show-object-format"], { signal });
  return parseObjectFormat(stdout.trim());
}

/** Reads the branch HEAD points to, or null when HEAD is detached. */
export async function readHead(gitDir: string, signal?: AbortSignal): Promise<string | null> {
  // Exit code 1 with -q means HEAD is not a symbolic ref (detached).
  const { exitCode, stdout } = await runGit(gitDir, ["symbolic-ref", "-q", "HEAD"], {
    signal,
    allowedExitCodes: [1],
  });
  return exitCode === 0 ? stdout.trim() : null;
}

/**
 * Reads every ref of a repository with one `git for-each-ref` call. Asks for
 * no object type and no peeling, because both read objects and cost about
 * five times as much on repositories with many tags.
 */
export async function readRefs(gitDir: string, signal?: AbortSignal): Promise<Map<string, string>> {
  const { stdout } = await runGit(gitDir, ["for-each-ref", "--format=%(objectname) %(refname)"], { signal });

  const refs = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    // Ref names cannot contain a space (git check-ref-format), so the first
    // space ends the object id.
    const space = line.indexOf(" ");
    refs.set(line.slice(space + 1), line.slice(0, space));
  }
  return refs;
}

/** Takes a snapshot of a repository: its object format, HEAD and refs. */
export async function readSnapshot(
  gitDir: string,
  knownFormat: ObjectFormat | undefined,
  signal?: AbortSignal,
): Promise<RepositorySnapshot> {
  // One after the other, so a broken repository always fails the same way
  // and its warning is logged once rather than alternating.
  const refs = await readRefs(gitDir, signal);
  const head = await readHead(gitDir, signal);

  // The format never changes for a repository, but a repository removed and
  // created again at the same path between two polls may have another one.
  // An object id of the wrong length reveals that.
  let objectFormat = knownFormat;
  const someOid = refs.values().next().value;
  if (objectFormat === undefined || (someOid !== undefined && someOid.length !== oidLength(objectFormat))) {
    objectFormat = await readObjectFormat(gitDir, signal);
  }

  return { objectFormat, head, refs };
}

/**
 * Looks up the type and the peeled object of many objects with one
 * `git cat-file --batch-check` call. Missing objects get type UNSPECIFIED and
 * an empty peeled id.
 */
export async function readObjectInfo(
  gitDir: string,
  oids: Iterable<string>,
  signal?: AbortSignal,
): Promise<Map<string, ObjectInfo>> {
  const unique = [...new Set(oids)];
  const info = new Map<string, ObjectInfo>();
  if (unique.length === 0) return info;

  // Two lines per object: the object itself for its type, then `<oid>^{}`
  // for the object it peels to.
  const input = unique.map((oid) => `${oid}\n${oid}^{}\n`).join("");
  const { stdout } = await runGit(gitDir, ["cat-file", "--batch-check=%(objectname) %(objecttype)"], {
    signal,
    input,
  });

  const lines = stdout.split("\n");
  unique.forEach((oid, index) => {
    const [, typeName = ""] = (lines[2 * index] ?? "").split(" ");
    const [peeledOid = "", peeledType = ""] = (lines[2 * index + 1] ?? "").split(" ");
    const missing = typeName === "missing" || peeledType === "missing";
    info.set(oid, {
      type: missing ? ObjectType.OBJECT_TYPE_UNSPECIFIED : parseObjectType(typeName),
      peeledOid: missing ? "" : peeledOid,
    });
  });
  return info;
}

/**
 * Tells whether `ancestor` is reachable from `descendant`. Git exits with
 * an error for a missing object or one that is not a commit. This returns
 * false then, because a missing commit cannot be in the complete history of
 * `descendant`.
 */
export async function isAncestor(
  gitDir: string,
  ancestor: string,
  descendant: string,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    const { exitCode } = await runGit(gitDir, ["merge-base", "--is-ancestor", ancestor, descendant], {
      signal,
      allowedExitCodes: [1],
    });
    return exitCode === 0;
  } catch (error) {
    if (error instanceof GitCommandError) return false;
    throw error;
  }
}
