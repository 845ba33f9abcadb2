// Renders a parsed configuration value back in the form an admin writes it in the file: sizes with
// k/m/g suffixes, durations in the key's own unit (bare seconds, or d/h/m suffixes for day-unit keys),
// switches as yes/no. Used by the example file, `--help` defaults and range errors, so all three
// speak the file's language. Pure: no I/O.
import type { KeyDef } from './schema.js';

/** Bytes as the largest exact suffix: 67108864 -> "64m", 1000 -> "1000". */
export function formatSize(bytes: number): string {
  for (const [suffix, mult] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${suffix}`;
  }
  return String(bytes);
}

/**
 * Seconds in the key's own unit: a bare number for second-unit keys (as they are written), else the
 * largest exact suffix (172800 -> "2d", 60 -> "1m"), never a bare number a day-unit key would misread.
 */
export function formatDuration(def: KeyDef, sec: number): string {
  if (def.unit !== 'd') return String(sec);
  for (const [suffix, mult] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (sec >= mult && sec % mult === 0) return `${sec / mult}${suffix}`;
  }
  return `${sec}s`;
}

/** One value of a key as it would be written after "key: " in the file. */
export function formatValue(def: KeyDef, value: unknown): string {
  if (def.kind === 'bool') return value ? 'yes' : 'no';
  if (def.kind === 'size') return formatSize(value as number);
  if (def.kind === 'duration') return formatDuration(def, value as number);
  if (typeof value === 'object' && value !== null && 'text' in value) return String((value as { text: unknown }).text);
  return String(value);
}

/**
 * A range limit for error messages: the file form, with "seconds" added where a duration limit is a
 * bare number (so "2d is above the maximum 86400 seconds" cannot be read as days).
 */
export function formatLimit(def: KeyDef, limit: number): string {
  const text = formatValue(def, limit);
  return def.kind === 'duration' && /^\d+$/.test(text) ? `${text} seconds` : text;
}
