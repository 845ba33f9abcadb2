// The upstream line `mxsentry lookup` prints under a failure: counts, and the likely cause when
// every query went unanswered or every answer was lame.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { failureSummary } from '../../src/cli/lookup-command.js';

const s = suite('cli/lookup failure summary');

s('all unanswered: the reachability of port 53 is the question', () => {
  assert.is(failureSummary({ queries: 13, timeouts: 13, lame: 0 }), '13 queries sent, 13 unanswered, 0 lame answers: no server answered; can this host reach port 53 (UDP and TCP) of the Internet\'s name servers?');
});

s('all lame (or unanswered): something may answer DNS in the servers\' place', () => {
  assert.match(failureSummary({ queries: 13, timeouts: 0, lame: 13 }), /: no server answered with authority \(does something on the path answer DNS in their place\?\)/);
  assert.match(failureSummary({ queries: 13, timeouts: 5, lame: 8 }), /no server answered with authority/);
});

s('mixed outcomes, or nothing sent: the counts and where the details are', () => {
  assert.is(failureSummary({ queries: 10, timeouts: 2, lame: 1 }), '10 queries sent, 2 unanswered, 1 lame answer; --log-level debug shows each');
  assert.is(failureSummary({ queries: 0, timeouts: 0, lame: 0 }), '0 queries sent, 0 unanswered, 0 lame answers; --log-level debug shows each');
});

s.run();
