// Reads the text files the daemon reads synchronously (the config file, the local zones file),
// refusing anything that is not a regular file before reading a byte: a FIFO or a device named by
// mistake would otherwise block the whole event loop (DNS included) for good. The asynchronous
// readers (tables, whitelists) only hold up their own load on such a file.
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

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
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
