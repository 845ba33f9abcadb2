// The local zones a configuration asks for: the built-in defaults minus `no-default-zone`, plus the
// admin's `local-zones-file` (or the shipped zones/local-zones.conf when present). Used by the
// daemon at start and on reload (main.ts) and by `config check` (cli/config-check.ts), so both
// read the same file the same way. Reads the file; binds nothing.
import { existsSync } from 'node:fs';
import type { ConfigValues } from '../../config/load.js';
import { zonesFile } from '../../util/paths.js';
import type { Name } from '../wire/types.js';
import { LocalZones } from './local-zones.js';

/** The local zones file in use: `local-zones-file`, else the shipped zones/local-zones.conf when present. */
export function localZonesFileOf(v: ConfigValues): string | undefined {
  const configured = v['local-zones-file'] as string;
  if (configured) return configured;
  const shipped = zonesFile('local-zones.conf');
  return existsSync(shipped) ? shipped : undefined;
}

/**
 * Built-in local zones minus `no-default-zone`, plus the local zones file in use. Throws the
 * loader's DnsError (DNS_ERR_ZONE_FILE / DNS_ERR_ZONE_SYNTAX, with file:line) for a bad file.
 */
export function createLocalZones(v: ConfigValues): LocalZones {
  const localZones = new LocalZones({ defaults: true });
  for (const zone of v['no-default-zone'] as Name[]) localZones.disable(zone);
  const localFile = localZonesFileOf(v);
  if (localFile) localZones.loadFile(localFile);
  return localZones;
}
