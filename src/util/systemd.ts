// systemd socket activation (sd_listen_fds(3)): reads the listening sockets a socket unit passed us.
// Called once at start by main.ts, before any other code opens a file, so the inherited fds are
// still those systemd gave. Must not open, close or read from the fds; the DNS and policy servers
// adopt them (dgram `bind({ fd })`, net `listen({ fd })`), asking socketFamily() what a UDP fd is.
// Also finds the credentials the unit passes (LoadCredential=), for replication-settings.ts.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/** First inherited fd (SD_LISTEN_FDS_START): 0-2 are stdio. */
export const SD_LISTEN_FDS_START = 3;

/** One socket passed by systemd; `name` comes from the unit's FileDescriptorName= ('unknown' when unset). */
export interface ListenFd {
  fd: number;
  name: string;
}

/**
 * Returns the sockets systemd passed to this process and removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from `env` (like `sd_listen_fds(1)`), so child processes never adopt them.
 *
 * Returns [] when the variables are absent, malformed, or addressed to another process
 * (LISTEN_PID != process.pid: the variables were inherited, not meant for us). Names missing from
 * LISTEN_FDNAMES (fewer names than fds) are 'unknown', as systemd documents.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ListenFd[] {
  const pidText = env.LISTEN_PID;
  const countText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pidText === undefined || countText === undefined) return [];
  if (!/^\d+$/.test(pidText) || Number(pidText) !== pid) return [];
  if (!/^\d+$/.test(countText)) return [];
  const count = Number(countText);
  // An absurd count is a broken environment, not a request to adopt thousands of fds.
  if (count <= 0 || count > 1024) return [];
  const names = namesText !== undefined && namesText !== '' ? namesText.split(':') : [];
  const out: ListenFd[] = [];
  for (let i = 0; i < count; i++) {
    const name = names[i];
    out.push({ fd: SD_LISTEN_FDS_START + i, name: name !== undefined && name !== '' ? name : 'unknown' });
  }
  return out;
}

/**
 * Address family of an inherited socket fd, read from /proc (Linux, where systemd runs): the fd's
 * inode is looked up in /proc/net/{udp,tcp}{,6}. A dgram socket must be created with the family
 * of the fd it adopts (a udp4 handle cannot send to an IPv6 peer, nor the reverse), and Node has
 * no getsockname() on a bare fd. Null when it cannot be told.
 */
export function socketFamily(fd: number, kind: 'udp' | 'tcp', procRoot = '/proc'): 4 | 6 | null {
  let link: string;
  try {
    link = readlinkSync(`${procRoot}/self/fd/${fd}`);
  } catch (err) {
    if (isNoEntry(err)) return null;
    throw err;
  }
  const m = /^socket:\[(\d+)\]$/.exec(link);
  if (!m) return null;
  const inode = m[1] as string;
  for (const family of [4, 6] as const) {
    let table: string;
    try {
      table = readFileSync(`${procRoot}/net/${kind}${family === 6 ? '6' : ''}`, 'utf8');
    } catch (err) {
      if (isNoEntry(err)) continue; // no IPv6 in this kernel or namespace
      throw err;
    }
    for (const line of table.split('\n')) {
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
      if (line.trim().split(/\s+/)[9] === inode) return family;
    }
  }
  return null;
}

/**
 * Path of the credential `name` systemd passed to this process (`LoadCredential=name:FILE` puts a
 * copy readable by the service only in $CREDENTIALS_DIRECTORY), or undefined when there is none.
 */
export function credentialPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (dir === undefined || dir === '' || !isAbsolute(dir)) return undefined;
  const path = join(dir, name);
  return existsSync(path) ? path : undefined;
}

function isNoEntry(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'EACCES';
}
