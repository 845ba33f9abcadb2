// Values a network peer chose (policy request attributes), as they go into a log line: cut to
// LOGGED_VALUE_CHARS characters and a count of the rest. Postfix's own values fit (an address path
// is at most 256 octets, a host name 255); a client sending 4 KB attributes must not make every
// line it causes as long. Used by the policy pipeline, server and checks.

/** Characters of a value logged whole. */
export const LOGGED_VALUE_CHARS = 300;

/** The value as logged: whole up to LOGGED_VALUE_CHARS, else cut with the count of the rest. */
export function clipLogValue(value: string | undefined): string | undefined {
  if (value === undefined || value.length <= LOGGED_VALUE_CHARS) return value;
  return `${value.slice(0, LOGGED_VALUE_CHARS)}...(${value.length - LOGGED_VALUE_CHARS} more characters)`;
}
