// CidrIndex answers exactly as a scan of the list in order (the first network containing the
// address), on random overlapping IPv4 and IPv6 networks of every prefix length.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CidrIndex } from '../../src/util/cidr-index.js';
import { cidrContains, formatAddress, parseCidr, type Cidr } from '../../src/util/cidr.js';
import { seededRandom } from '../helpers/seeded-random.js';

const s = suite('util/cidr-index');

s('first() equals the first match of an in-order scan, for random overlapping networks', () => {
  const rnd = seededRandom(4242);
  const int = (n: number): number => Math.floor(rnd() * n);
  // Few distinct leading bytes, so that networks overlap and addresses often fall in several.
  const bytes = (family: 4 | 6): Uint8Array => Uint8Array.from({ length: family === 4 ? 4 : 16 }, (_, i) => (i < 2 ? int(3) : int(256)));
  for (let round = 0; round < 20; round++) {
    const nets: Cidr[] = [];
    for (let i = 0; i < 300; i++) {
      const family = int(3) === 0 ? 6 : 4;
      const max = family === 4 ? 32 : 128;
      nets.push(parseCidr(`${formatAddress(family, bytes(family))}/${int(max + 1)}`));
    }
    // parseCidr masks host bits: the network is what a table line of that text would mean.
    const index = new CidrIndex(nets);
    for (let q = 0; q < 500; q++) {
      const family = int(3) === 0 ? 6 : 4;
      const addr = { family: family as 4 | 6, bytes: bytes(family) };
      const scan = nets.findIndex((n) => cidrContains(n, addr));
      assert.is(index.first(addr), scan, `${formatAddress(addr.family, addr.bytes)} in round ${round}`);
    }
  }
});

s('an empty list matches nothing; a /0 matches every address of its family only', () => {
  assert.is(new CidrIndex([]).first({ family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) }), -1);
  const index = new CidrIndex([parseCidr('192.0.2.0/24'), parseCidr('0.0.0.0/0')]);
  assert.is(index.first({ family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) }), 0);
  assert.is(index.first({ family: 4, bytes: Uint8Array.from([10, 0, 0, 1]) }), 1);
  assert.is(index.first({ family: 6, bytes: new Uint8Array(16) }), -1);
});

s.run();
