// Locations inside the installed package (zones/ data shipped with mxsentry), found from this
// file's own location so they work from a git checkout, an npm install or a system package.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

/** The folder holding mxsentry's package.json. */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'zones'))) return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error('cannot find the mxsentry package root (package.json next to zones/)');
}

/** A file shipped in zones/. */
export function zonesFile(name: string): string {
  return join(packageRoot(), 'zones', name);
}
