// `mxsentry lookup NAME [TYPE]`: resolves through the same resolver code the daemon runs (a private
// in-process instance with the daemon's settings, see daemon-config.ts) and prints the answer and
// where it came from.
import { domainToASCII } from 'node:url';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { parseName } from '../dns/wire/name.js';
import { reverseName } from '../dns/server/local-zones.js';
import { qtypeRefusal } from '../dns/server/query-refusal.js';
import { parseAddress } from '../util/cidr.js';
import { typeFromString, typeToString } from '../dns/wire/rdata.js';
import { systemClock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import { usageError } from './control-cli.js';
import type { CliDeps } from './cli.js';
import { addConfigFlags } from './config-flags.js';
import { commandLogger, loadDaemonConfig, offlineDnsStack } from './daemon-config.js';
import { formatRecord, rcodeToString, recordJson } from './output.js';

interface LookupArgs {
  name: string;
  type?: string;
  x?: boolean;
  json?: boolean;
  config?: string;
}

export function lookupCommand(deps: CliDeps): CommandModule<object, LookupArgs> {
  return {
    command: 'lookup <name> [type]',
    describe: 'Resolve a name iteratively with the resolver code of the daemon and print the answer',
    builder: (y: Argv) =>
      addConfigFlags(
        y
          .positional('name', { type: 'string', demandOption: true, describe: 'Domain name' })
          .positional('type', { type: 'string', describe: 'Record type (A, AAAA, MX, TXT, ...; default A); for an IP address without a type: PTR of its reverse name' })
          .option('x', { type: 'boolean', describe: 'Reverse lookup, as dig -x: the PTR record of the address NAME' })
          .option('json', { type: 'boolean', describe: 'Print the result as JSON' }),
        { listed: false, shown: ['root-hints', 'query-loopback'] },
      ) as unknown as Argv<LookupArgs>,
    handler: async (argv: ArgumentsCamelCase<LookupArgs>) => {
      // An address without a type (or with -x) asks for its PTR record, as `host ADDR` and
      // `dig -x ADDR` do; with a type it is looked up as the name it is written as, as dig does.
      const address = parseAddress(argv.name);
      if (argv.x && !address) return usageError(`-x takes an IP address, got "${argv.name}"`);
      if (address && (argv.x || argv.type === undefined)) {
        if (argv.x && argv.type !== undefined && argv.type.toUpperCase() !== 'PTR') return usageError(`-x looks up the PTR record; leave out "${argv.type}"`);
        argv.name = reverseName(address.family, address.bytes).slice(0, -1); // printed as typed: no final dot
        argv.type = 'PTR';
      }
      argv.type ??= 'A';
      // An internationalised name is asked in its ASCII (IDNA, "xn--") form, as dig asks it.
      if (/[^\x00-\x7f]/.test(argv.name)) {
        const ascii = domainToASCII(argv.name);
        if (ascii === '') return usageError(`"${argv.name}" is not a valid internationalised domain name`);
        argv.name = ascii;
      }
      // A bad name or type is the admin's typo, not a DNS failure: usage error (exit 2), no lookup.
      try {
        parseName(argv.name);
        const qtype = typeFromString(argv.type);
        const refusal = qtypeRefusal(qtype);
        if (refusal !== null) return usageError(`${typeToString(qtype)} is not a type a resolver looks up (the DNS server answers it ${rcodeToString(refusal)})`);
      } catch (err) {
        return usageError(describeError(err));
      }
      const cfg = loadDaemonConfig(argv as Record<string, unknown>);
      if (!cfg) return;
      const values = cfg.values;
      const logger = commandLogger(argv as Record<string, unknown>);
      const stack = offlineDnsStack(() => deps.createDnsStack(values, logger, systemClock, { listZones: deps.listZonesOf(values) }));
      if (!stack) return;
      // yargs formats its help text synchronously once a handler has returned its promise (~100-250 ms
      // for serve's flags): let that happen first, so the time printed is the resolution's alone.
      await new Promise((resolve) => setImmediate(resolve));
      const started = Date.now();
      const r = await stack.resolver.resolve(argv.name, argv.type);
      const ms = Date.now() - started;
      // What the servers did, for a failure: this process asked nothing else, so the counts are this lookup's.
      const it = stack.iterator.stats;
      const upstream = { queries: it.upstreamQueries, timeouts: it.upstreamTimeouts, lame: it.lameServers };
      if (argv.json) {
        const json = {
          name: argv.name, type: argv.type.toUpperCase(), rcode: rcodeToString(r.rcode), source: r.source, ms, failure: r.failure, failureDetail: r.failureDetail,
          // The asked type's records at the end of any CNAME/DNAME chain, typed; then both sections as dig shows them.
          records: r.records, answers: r.answers.map(recordJson), authorities: r.authorities.map(recordJson),
          ...(r.failure ? { upstream } : {}),
        };
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        // The servers' own answers (REFUSED, SERVFAIL, unreachable) when they gave none usable, as dig @server shows them.
        const failure = r.failure ? `, failure: ${r.failure}${r.failureDetail ? ` (${r.failureDetail})` : ''}` : '';
        process.stdout.write(`;; ${argv.name} ${argv.type.toUpperCase()}: ${rcodeToString(r.rcode)}, from ${r.source}, ${ms} ms${failure}\n`);
        if (r.failure) process.stdout.write(`;; upstream: ${failureSummary(upstream)}\n`);
        for (const rr of r.answers) process.stdout.write(`${formatRecord(rr)}\n`);
        // As dig's AUTHORITY section: also after a CNAME chain that ends in NXDOMAIN or NODATA.
        for (const rr of r.authorities) process.stdout.write(`;; authority: ${formatRecord(rr)}\n`);
      }
      // Exit codes: 0 answer, 1 NXDOMAIN/NODATA, 2 usage/config, 3 SERVFAIL.
      process.exitCode = r.rcode === 2 ? 3 : r.rcode === 0 && r.records.length > 0 ? 0 : r.rcode === 0 || r.rcode === 3 ? 1 : 3;
    },
  };
}

/**
 * The upstream side of a failed lookup in one line, with the likely cause when every query timed out
 * (nothing reachable on port 53) or every answer was lame (e.g. a network that intercepts DNS). The
 * details are in the log: --log-level debug.
 */
export function failureSummary(u: { queries: number; timeouts: number; lame: number }): string {
  const counts = `${u.queries} ${u.queries === 1 ? 'query' : 'queries'} sent, ${u.timeouts} unanswered, ${u.lame} lame ${u.lame === 1 ? 'answer' : 'answers'}`;
  if (u.queries > 0 && u.timeouts === u.queries) return `${counts}: no server answered; can this host reach port 53 (UDP and TCP) of the Internet's name servers?`;
  if (u.lame > 0 && u.timeouts + u.lame >= u.queries) return `${counts}: no server answered with authority (does something on the path answer DNS in their place?); --log-level debug shows each`;
  return `${counts}; --log-level debug shows each`;
}
