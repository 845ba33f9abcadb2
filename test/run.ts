// Test runner: loads every compiled uvu suite under dist/test (or those matching argv[2]) in one
// process, then prints uvu's totals plus one plain closing line "tests: N passed, N failed, N skipped".
// Exits explicitly so a suite that leaks a handle cannot hang CI.
import { readdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from 'uvu/run';
import { skippedCount } from './helpers/peers.js';

const root = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;

function walk(dir: string, out: string[]): string[] {
  for (const entry of readdirSync(dir).sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (entry.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const files = walk(root, []).filter((f) => !filter || filter.test(relative(root, f)));
let captured = '';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  if (captured.length > 4096) captured = captured.slice(-4096);
  return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;

await run(files.map((file) => ({ name: relative(root, file), file })), { bail: false });
process.stdout.write = write;
// eslint-disable-next-line no-control-regex
const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const failed = total - passed;
const code = Number(process.exitCode ?? 0) || (failed > 0 ? 1 : 0) || (total === 0 ? 1 : 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skippedCount()} skipped`);
process.exit(code);
