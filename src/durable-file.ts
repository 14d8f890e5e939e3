import { open, rename } from "node:fs/promises";

/** Appends `text` to `file` and returns once it is on disk (fdatasync). */
export async function appendFileDurably(file: string, text: string): Promise<void> {
  await writeAndSync(file, text, "a");
}

/**
 * Replaces `file` with `text` through a temporary file and a rename, so a
 * crash leaves either the old or the new content, never a mix.
 */
export async function replaceFileAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.tmp`;
  await writeAndSync(temporary, text, "w");
  await rename(temporary, file);
}

async function writeAndSync(file: string, text: string, flags: "a" | "w"): Promise<void> {
  const handle = await open(file, flags);
  try {
    await handle.writeFile(text, "utf8");
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
