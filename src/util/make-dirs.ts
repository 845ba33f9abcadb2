// Creates a directory and its missing parents, as `mkdir -p`, for the data dir and the store's
// folder. Node's own mkdirSync(path, { recursive: true }) never returns for a path such as
// /proc/foo, where a parent exists but a child can never be made there (mkdir gives ENOENT under an
// existing /proc): it loops in native code at full CPU and the process no longer handles signals.
// Here each component is made at most twice, so such a path ends in an error.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Makes `path` and its missing parents (new ones get `mode`, minus the umask); nothing to do when it
 * is a directory already. Throws the mkdir error (ENOENT, EACCES, EROFS, ...) that stops it, or an
 * ENOTDIR error when the path or a parent exists and is not a directory.
 */
export function makeDirs(path: string, mode = 0o777): void {
  makeOne(resolve(path), mode);
}

function makeOne(path: string, mode: number): void {
  try {
    mkdirSync(path, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (statSync(path).isDirectory()) return;
      throw Object.assign(new Error(`ENOTDIR: ${path} exists and is not a directory`), { code: 'ENOTDIR', path });
    }
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
    makeOne(parent, mode);
  }
  // The parent is there now: a second ENOENT (a parent where nothing can be made) is thrown.
  mkdirSync(path, { mode });
}
