// Tests for the policy protocol parser and reply: a real Postfix 3.7 request split at every byte,
// UTF-8 values split inside characters, pipelined requests, byte limits (non-ASCII too), garbage,
// malformed requests, reply injection.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyRequestParser, formatReply, malformedReason } from '../../src/policy/protocol.js';
import type { PolicyRequest } from '../../src/policy/types.js';
import { PolicyError } from '../../src/util/errors.js';
import { POSTFIX_37_ATTRIBUTES, encodeRequest, postfixRequest } from './fixtures.js';

const s = suite('policy/protocol');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.instance(err, PolicyError);
    return (err as PolicyError).code;
  }
  return undefined;
}

s('parses a real 29-attribute Postfix 3.7 request', () => {
  assert.is(POSTFIX_37_ATTRIBUTES.length, 29);
  const parser = new PolicyRequestParser();
  const out = parser.push(Buffer.from(encodeRequest(POSTFIX_37_ATTRIBUTES)));
  assert.is(out.length, 1);
  const req = out[0]!;
  assert.equal({ ...req }, postfixRequest());
  assert.is(Object.keys(req).length, 29);
  assert.is(req.queue_id, '');
  assert.is(req.sasl_username, '');
  assert.is(malformedReason(req), undefined);
});

s('split across every byte boundary gives the same request', () => {
  const wire = Buffer.from(encodeRequest(POSTFIX_37_ATTRIBUTES));
  for (let cut = 1; cut < wire.length; cut++) {
    const parser = new PolicyRequestParser();
    const first = parser.push(wire.subarray(0, cut));
    const second = parser.push(wire.subarray(cut));
    assert.is(first.length + second.length, 1, `cut at ${cut}`);
    assert.equal({ ...(first[0] ?? second[0])! }, postfixRequest(), `cut at ${cut}`);
  }
});

s('one byte at a time', () => {
  const wire = Buffer.from(encodeRequest(POSTFIX_37_ATTRIBUTES));
  const parser = new PolicyRequestParser();
  const all = [];
  for (let i = 0; i < wire.length; i++) all.push(...parser.push(wire.subarray(i, i + 1)));
  assert.is(all.length, 1);
  assert.is(all[0]!.recipient, 'bob@example.org');
});

s('several requests in one chunk come out in order; a chunk can end mid-request', () => {
  const parser = new PolicyRequestParser();
  const a = encodeRequest(postfixRequest({ recipient: 'one@example.org' }));
  const b = encodeRequest(postfixRequest({ recipient: 'two@example.org' }));
  const c = encodeRequest(postfixRequest({ recipient: 'three@example.org' }));
  const out = parser.push(Buffer.from(a + b + c.slice(0, 40)));
  assert.equal(out.map((r) => r.recipient), ['one@example.org', 'two@example.org']);
  const rest = parser.push(Buffer.from(c.slice(40)));
  assert.equal(rest.map((r) => r.recipient), ['three@example.org']);
});

s('null sender and missing HELO arrive as empty values; "=" inside values is kept', () => {
  const parser = new PolicyRequestParser();
  const [req] = parser.push(Buffer.from('request=smtpd_access_policy\nsender=\nhelo_name=\nccert_subject=CN=mx,O=x\n\n'));
  assert.is(req!.sender, '');
  assert.is(req!.helo_name, '');
  assert.is(req!.ccert_subject, 'CN=mx,O=x');
  assert.is(malformedReason(req!), undefined);
});

s('unknown attributes are kept but harmless; a repeated name keeps the last value', () => {
  const parser = new PolicyRequestParser();
  const [req] = parser.push(Buffer.from('request=smtpd_access_policy\nmail_version=3.8.1\nsender=a@b.example\nsender=c@d.example\n\n'));
  assert.is(req!.mail_version, '3.8.1');
  assert.is(req!.sender, 'c@d.example');
});

s('one connection whose requests change their attribute order and names reads each as a new parser would', () => {
  const base = [...POSTFIX_37_ATTRIBUTES] as [string, string][];
  const variants: [string, string][][] = [
    base,
    base,
    [...base].reverse(),
    base.map(([k, v]) => (k === 'sender' ? ['senders', v] : [k, v])), // a longer name where "sender" is expected
    base.map(([k, v]) => (k === 'recipient' ? ['recipien', v] : [k, v])), // a shorter one
    base.map(([k, v]) => (k === 'size' ? ['SIZE', v] : [k, v])), // case matters
    base.filter(([k]) => k !== 'helo_name'), // one attribute less: every later line moves up
    [['request', 'smtpd_access_policy'], ['x_unknown', '1'], ...base.slice(1)],
    [...base, ['compatibility_level', '3.6'], ['mail_version', '3.8.1'], ['x_other', 'y=z']],
    base,
  ];
  const shared = new PolicyRequestParser();
  for (const [i, pairs] of variants.entries()) {
    const wire = Buffer.from(encodeRequest(pairs));
    const [got] = shared.push(wire);
    const [fresh] = new PolicyRequestParser().push(wire);
    assert.equal({ ...got }, { ...fresh }, `request ${i}`);
    assert.equal({ ...got }, Object.fromEntries(pairs), `request ${i} holds exactly what was sent`);
  }
});

s('CRLF line ends (hand tests with nc/telnet) are accepted', () => {
  const parser = new PolicyRequestParser();
  const [req] = parser.push(Buffer.from('request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n'));
  assert.is(req!.protocol_state, 'RCPT');
  assert.is(malformedReason(req!), undefined);
});

s('a "__proto__" attribute is data, not a prototype change', () => {
  const parser = new PolicyRequestParser();
  const [req] = parser.push(Buffer.from('request=smtpd_access_policy\n__proto__=x\n\n'));
  // Requests are prototype-less objects: the attribute cannot have set a prototype.
  assert.is(Object.getPrototypeOf(req), null);
  assert.is(Object.getOwnPropertyDescriptor(req, '__proto__')?.value, 'x');
  assert.is((req as Record<string, string>)['request'], 'smtpd_access_policy');
});

s('a line without "=" makes that request malformed, and the next one is fine', () => {
  const parser = new PolicyRequestParser();
  const out = parser.push(Buffer.from('request=smtpd_access_policy\nthis is not an attribute\nsender=a@b.example\n\n' + encodeRequest(postfixRequest())));
  assert.is(out.length, 2);
  assert.match(malformedReason(out[0]!) ?? '', /no "="/);
  assert.is(malformedReason(out[1]!), undefined);
});

s('empty name, empty request, missing or foreign request type are malformed', () => {
  const cases: Array<[string, RegExp]> = [
    ['request=smtpd_access_policy\n=value\n\n', /empty name/],
    ['\n', /empty request/],
    ['protocol_state=RCPT\n\n', /missing request=/],
    ['request=something_else\n\n', /unsupported request type/],
  ];
  for (const [wire, why] of cases) {
    const [req] = new PolicyRequestParser().push(Buffer.from(wire));
    assert.ok(req, wire);
    assert.match(malformedReason(req) ?? '', why, wire);
  }
});

s('a line over the limit throws LINE_TOO_LONG before its newline arrives, then stays failed', () => {
  const parser = new PolicyRequestParser({ maxLineBytes: 100 });
  assert.is(parser.push(Buffer.from(`sender=${'a'.repeat(50)}`)).length, 0);
  assert.is(codeOf(() => parser.push(Buffer.from('b'.repeat(60)))), 'POLICY_ERR_LINE_TOO_LONG');
  assert.is(codeOf(() => parser.push(Buffer.from('\n\n'))), 'POLICY_ERR_LINE_TOO_LONG');
});

s('a line exactly at the limit is accepted (the LF is not counted)', () => {
  const parser = new PolicyRequestParser({ maxLineBytes: 20 });
  const line = `request=${'x'.repeat(12)}`; // 20 bytes
  assert.is(parser.push(Buffer.from(`${line}\n\n`)).length, 1);
});

s('default limits: 4096-byte line, 64 KiB request, 100 attributes', () => {
  assert.is(codeOf(() => new PolicyRequestParser().push(Buffer.from(`x=${'a'.repeat(4095)}\n`))), 'POLICY_ERR_LINE_TOO_LONG');
  assert.is(new PolicyRequestParser().push(Buffer.from(`request=smtpd_access_policy\nx=${'a'.repeat(4094)}\n\n`)).length, 1);
  const many = Array.from({ length: 101 }, (_, i) => `a${i}=1`).join('\n');
  assert.is(codeOf(() => new PolicyRequestParser().push(Buffer.from(`${many}\n`))), 'POLICY_ERR_REQUEST_TOO_LARGE');
  const hundred = Array.from({ length: 99 }, (_, i) => `a${i}=1`).join('\n');
  assert.is(new PolicyRequestParser().push(Buffer.from(`request=smtpd_access_policy\n${hundred}\n\n`)).length, 1);
  const big = Array.from({ length: 20 }, (_, i) => `a${i}=${'v'.repeat(4000)}`).join('\n');
  assert.is(codeOf(() => new PolicyRequestParser().push(Buffer.from(`${big}\n`))), 'POLICY_ERR_REQUEST_TOO_LARGE');
});

s('request size is counted per request, not per connection', () => {
  const parser = new PolicyRequestParser({ maxRequestBytes: 700 });
  const one = encodeRequest(postfixRequest()); // 610 bytes
  assert.ok(one.length < 700);
  for (let i = 0; i < 20; i++) assert.is(parser.push(Buffer.from(one)).length, 1);
});

s('NUL bytes are garbage: MALFORMED (close), even in the middle of a value', () => {
  assert.is(codeOf(() => new PolicyRequestParser().push(Buffer.from('request=smtpd_acc\0ess_policy\n\n'))), 'POLICY_ERR_MALFORMED');
  const random = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256));
  assert.is(codeOf(() => new PolicyRequestParser().push(random)), 'POLICY_ERR_MALFORMED');
});

// Non-ASCII values: 2-byte (ö, ä) and 4-byte (😀, two UTF-16 units) UTF-8 characters, so string
// lengths and byte counts differ. Postfix passes such bytes through from SMTPUTF8 sessions.
const UTF8_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ['request', 'smtpd_access_policy'],
  ['sender', 'jörg@exämple.org'],
  ['recipient', 'bob@example.org'],
  ['helo_name', 'mx.😀.example'],
];

function wireOf(attributes: ReadonlyArray<readonly [string, string]>, eol: string): Buffer {
  return Buffer.from(`${attributes.map(([k, v]) => `${k}=${v}${eol}`).join('')}${eol}`);
}

s('UTF-8 values split at every byte (inside characters too), LF or CRLF, parse as in one chunk', () => {
  for (const eol of ['\n', '\r\n']) {
    // A second request after the first, so the lines after the cut are several in one chunk.
    const wire = Buffer.concat([wireOf(UTF8_ATTRIBUTES, eol), wireOf(POSTFIX_37_ATTRIBUTES, eol)]);
    const whole = new PolicyRequestParser().push(wire).map((r) => ({ ...r }));
    assert.equal(whole, [Object.fromEntries(UTF8_ATTRIBUTES), postfixRequest()]);
    for (let cut = 1; cut < wire.length; cut++) {
      const parser = new PolicyRequestParser();
      const out = [...parser.push(wire.subarray(0, cut)), ...parser.push(wire.subarray(cut))];
      assert.equal(out.map((r) => ({ ...r })), whole, `${JSON.stringify(eol)} cut at ${cut}`);
      assert.equal(out.map((r) => malformedReason(r)), [undefined, undefined], `${JSON.stringify(eol)} cut at ${cut}`);
      assert.not.ok(parser.hasPartialRequest());
    }
  }
});

s('a UTF-8 CRLF request one byte at a time', () => {
  const wire = wireOf(UTF8_ATTRIBUTES, '\r\n');
  const parser = new PolicyRequestParser();
  const all = [];
  for (let i = 0; i < wire.length; i++) {
    all.push(...parser.push(wire.subarray(i, i + 1)));
    if (i < wire.length - 1) assert.ok(parser.hasPartialRequest(), `byte ${i}`);
  }
  assert.equal(all.map((r) => ({ ...r })), [Object.fromEntries(UTF8_ATTRIBUTES)]);
  assert.is(Object.getPrototypeOf(all[0]), null);
  assert.not.ok(parser.hasPartialRequest());
});

s('maxLineBytes counts UTF-8 bytes, whether or not the newline has arrived', () => {
  const line = 'sender=jörg😀@exämple.org';
  assert.is(line.length, 25); // UTF-16 units
  assert.is(Buffer.byteLength(line), 29);
  const wire = Buffer.from(`request=smtpd_access_policy\n${line}\n\n`);
  const [req] = new PolicyRequestParser({ maxLineBytes: 29 }).push(wire);
  assert.is(req!.sender, 'jörg😀@exämple.org');
  assert.is(codeOf(() => new PolicyRequestParser({ maxLineBytes: 28 }).push(wire)), 'POLICY_ERR_LINE_TOO_LONG');
  // Unterminated (checked before the newline): 29 bytes pass, also when cut inside the emoji.
  assert.is(new PolicyRequestParser({ maxLineBytes: 29 }).push(Buffer.from(line)).length, 0);
  const cutInEmoji = new PolicyRequestParser({ maxLineBytes: 29 });
  assert.is(cutInEmoji.push(Buffer.from(line).subarray(0, 13)).length, 0);
  const [rest] = cutInEmoji.push(Buffer.from(`${line}\n\n`).subarray(13));
  assert.is(rest!.sender, 'jörg😀@exämple.org');
  assert.is(codeOf(() => new PolicyRequestParser({ maxLineBytes: 28 }).push(Buffer.from(line))), 'POLICY_ERR_LINE_TOO_LONG');
});

s('maxLineBytes counts the bytes of invalid UTF-8, not of the U+FFFD it decodes to', () => {
  // 0xE9 is a Latin-1 "é": one byte, decoded to U+FFFD, which is three bytes in UTF-8. The "ä"
  // line puts the chunk off one UTF-16 unit per byte.
  const line = Buffer.concat([Buffer.from('sender=j'), Buffer.from([0xe9]), Buffer.from('rg@example.org')]);
  assert.is(line.length, 23);
  const wire = Buffer.concat([Buffer.from('request=smtpd_access_policy\nhelo_name=exämple\n'), line, Buffer.from('\n\n')]);
  const [req] = new PolicyRequestParser({ maxLineBytes: 27 }).push(wire);
  assert.is(req!.sender, 'j\ufffdrg@example.org');
  assert.is(req!.helo_name, 'exämple');
  const shortLines = Buffer.concat([Buffer.from('helo_name=exämple\n'), line, Buffer.from('\n')]);
  assert.is(new PolicyRequestParser({ maxLineBytes: 23 }).push(shortLines).length, 0);
  assert.is(codeOf(() => new PolicyRequestParser({ maxLineBytes: 22 }).push(shortLines)), 'POLICY_ERR_LINE_TOO_LONG');
});

s('a CR before the LF counts against maxLineBytes (only the LF is free)', () => {
  const line = `request=${'x'.repeat(12)}`; // 20 bytes
  assert.is(new PolicyRequestParser({ maxLineBytes: 21 }).push(Buffer.from(`${line}\r\n\r\n`)).length, 1);
  assert.is(codeOf(() => new PolicyRequestParser({ maxLineBytes: 20 }).push(Buffer.from(`${line}\r\n\r\n`))), 'POLICY_ERR_LINE_TOO_LONG');
});

s('maxRequestBytes counts UTF-8 bytes of every line and newline, at any split', () => {
  for (const eol of ['\n', '\r\n']) {
    const wire = wireOf(UTF8_ATTRIBUTES, eol);
    const size = wire.length; // all lines, their line ends and the empty line
    for (let cut = 0; cut < wire.length; cut++) {
      const fits = new PolicyRequestParser({ maxRequestBytes: size });
      const out = [...fits.push(wire.subarray(0, cut)), ...fits.push(wire.subarray(cut))];
      assert.is(out.length, 1, `${JSON.stringify(eol)} cut at ${cut}`);
      const over = new PolicyRequestParser({ maxRequestBytes: size - 1 });
      const code = codeOf(() => [over.push(wire.subarray(0, cut)), over.push(wire.subarray(cut))]);
      assert.is(code, 'POLICY_ERR_REQUEST_TOO_LARGE', `${JSON.stringify(eol)} cut at ${cut}`);
    }
  }
});

s('many pipelined requests, mixed UTF-8, CRLF and malformed, in one chunk or in 7-byte chunks', () => {
  const parts: Buffer[] = [];
  for (let i = 0; i < 30; i++) {
    const eol = i % 3 === 0 ? '\r\n' : '\n';
    if (i % 7 === 5) parts.push(Buffer.from(`request=smtpd_access_policy${eol}not an attribute ö${eol}${eol}`));
    else parts.push(wireOf([...UTF8_ATTRIBUTES, ['instance', `n${i}`]], eol));
  }
  const wire = Buffer.concat(parts);
  const summary = (out: PolicyRequest[]) => out.map((r) => [r.instance, r.sender, malformedReason(r)]);
  const whole = new PolicyRequestParser().push(wire);
  assert.is(whole.length, 30);
  assert.equal(summary(whole)[0], ['n0', 'jörg@exämple.org', undefined]);
  assert.equal(summary(whole)[5], [undefined, undefined, 'attribute line 2 has no "=": "not an attribute ö"']);
  const parser = new PolicyRequestParser();
  const chunked: PolicyRequest[] = [];
  for (let i = 0; i < wire.length; i += 7) chunked.push(...parser.push(wire.subarray(i, i + 7)));
  assert.equal(summary(chunked), summary(whole));
});

s('a line without "=" does not borrow the "=" of a later line', () => {
  const [req] = new PolicyRequestParser().push(Buffer.from('request=smtpd_access_policy\nnoeq\r\nsender=a=b\n=x\nrecipient=r\n\n'));
  assert.equal(Object.keys(req!), ['request', 'sender', 'recipient']);
  assert.is(req!.sender, 'a=b');
  assert.is(req!.recipient, 'r');
  assert.is(malformedReason(req!), 'attribute line 2 has no "=": "noeq"');
});

s('invalid limits are refused at construction', () => {
  assert.is(codeOf(() => new PolicyRequestParser({ maxLineBytes: 0 })), 'POLICY_ERR_BAD_LIMIT');
  assert.is(codeOf(() => new PolicyRequestParser({ maxAttributes: 1.5 })), 'POLICY_ERR_BAD_LIMIT');
});

s('formatReply writes action= and the empty line; refuses line injection', () => {
  assert.is(formatReply('DUNNO'), 'action=DUNNO\n\n');
  assert.is(formatReply('DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 60 seconds'), 'action=DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 60 seconds\n\n');
  assert.is(codeOf(() => formatReply('DUNNO\n\naction=OK')), 'POLICY_ERR_BAD_ACTION');
  assert.is(codeOf(() => formatReply('')), 'POLICY_ERR_BAD_ACTION');
  assert.is(codeOf(() => formatReply('OK\r')), 'POLICY_ERR_BAD_ACTION');
});

s.run();
