// Builds the native UDP I/O module (src/native/udp-io.c, with socket-keeper.c) into dist/native/udp-io.node with the
// system C compiler and the N-API and libuv headers Node.js ships. Run by `npm run build` after tsc.
// Without a compiler or the headers it says so and exits 0: the DNS server then uses node:dgram
// (correct, slower per answer). MXSENTRY_NATIVE=required (set by .ci/run) makes that a failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, from dist/src/native/build.js. */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const sources = ['udp-io.c', 'socket-keeper.c'].map((f) => join(root, 'src', 'native', f));
const output = join(root, 'dist', 'native', 'udp-io.node');

/** Where Node.js keeps node_api.h and uv.h: beside its binary (official tarballs, NodeSource), or the system's. */
function headerDir(): string | undefined {
  const candidates = [
    process.env.MXSENTRY_NODE_HEADERS,
    join(dirname(dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find((d): d is string => d !== undefined && d !== '' && existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
}

function fail(reason: string): never {
  const required = process.env.MXSENTRY_NATIVE === 'required';
  process.stderr.write(
    `mxsentry: the native UDP I/O module was not built: ${reason}.\n` +
      (required
        ? 'MXSENTRY_NATIVE=required: failing the build.\n'
        : 'The DNS server will use node:dgram instead (correct, but more CPU per answer). ' +
          'To build it, install a C compiler (Debian: apt-get install gcc libc6-dev) and run `npm run build` again.\n'),
  );
  process.exit(required ? 1 : 0);
}

function main(): void {
  if (process.platform !== 'linux') fail(`it uses Linux system calls (recvmmsg), and this is ${process.platform}`);
  const include = headerDir();
  if (!include) fail(`no Node.js headers (node_api.h, uv.h) beside ${process.execPath} or in /usr/include/node; set MXSENTRY_NODE_HEADERS to their folder`);
  // CC may carry arguments (CC="ccache gcc"), as make's does.
  const [cc = 'cc', ...ccArgs] = (process.env.CC || 'cc').trim().split(/\s+/);
  mkdirSync(dirname(output), { recursive: true });
  rmSync(output, { force: true });
  const args = [
    ...ccArgs, '-O2', '-Wall', '-Wextra', '-std=gnu11', '-shared', '-fPIC', '-fvisibility=hidden', '-pthread',
    // Never unloaded: a worker's teardown unloads addons while uv_close callbacks into this code are pending.
    '-Wl,-z,nodelete', '-I', include, ...sources, '-o', output,
  ];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error) fail(`${cc}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no C compiler on PATH' : r.error.message}`);
  if (r.status !== 0) fail(`${cc} ${args.join(' ')} exited ${String(r.status)}:\n${r.stderr.trim()}`);
  if (r.stderr.trim() !== '') process.stderr.write(r.stderr);
  process.stdout.write(`mxsentry: built ${output}\n`);
}

main();
