// Reads the text files the daemon reads synchronously (the config file, the local zones file, the root hints),
// refusing anything that is not a regular file before reading a byte: a FIFO or a device named by
// mistake would otherwise block the whole event loop (DNS included) for good. The asynchronous
// readers (tables, whitelists) only hold up their own load on such a file. Both refuse a file over
// MAX_TEXT_FILE_BYTES: /dev/zero named as a table took 650 MB of memory before it failed.
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** The largest text file read (a Postfix table of a million addresses is about 30 MiB). */
export const MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024;

function tooLarge(path: string): Error {
  return new Error(`${path} is larger than ${MAX_TEXT_FILE_BYTES / (1024 * 1024)} MiB, more than any table or zone file: is it the right file?`);
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Opened without blocking (a FIFO with no writer would block open() itself); symlinks are followed. */
const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** The UTF-8 text of a regular file; throws Error "<path> is a FIFO, not a regular file" and the like. */
export function readTextFileSync(path: string): string {
  const fd = openSync(path, FLAGS);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is ${kindOf(st)}, not a regular file`);
    if (st.size > MAX_TEXT_FILE_BYTES) throw tooLarge(path);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * The UTF-8 text of a file read asynchronously (a regular file, or a FIFO a script feeds), up to
 * MAX_TEXT_FILE_BYTES; throws the open's error (with its code: ENOENT, EACCES) or "larger than".
 */
export async function readTextFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(256 * 1024);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_TEXT_FILE_BYTES) throw tooLarge(path);
      // A pipe hands over 64 KiB at a time: keep a copy of what was read, not the whole buffer.
      chunks.push(bytesRead < buf.length ? Buffer.from(buf.subarray(0, bytesRead)) : buf);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    await handle.close();
  }
}
