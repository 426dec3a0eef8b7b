// The simulator's own PKI: DER integers are minimal, so every generated certificate parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { derInteger, makePki } from '../../loadtest/apiserver/tls.js';

test('tls: DER integers are minimal (a serial starting with 0x00 once broke ~1 certificate in 128)', () => {
  const hex = (b: number[]) => derInteger(Buffer.from(b)).toString('hex');
  assert.equal(hex([0x00, 0x12, 0x34]), '02021234', 'redundant leading zero dropped');
  assert.equal(hex([0x00, 0x00, 0x92]), '02020092', 'kept where the high bit needs it');
  assert.equal(hex([0x92]), '02020092', 'added where the high bit needs it');
  assert.equal(hex([0x00]), '020100', 'zero is one byte');
  assert.equal(hex([0x02]), '020102');
  for (let i = 0; i < 200; i++) {
    const p = makePki({ ips: ['127.0.0.1'] });
    for (const c of [p.ca, p.server, p.client]) assert.ok(new X509Certificate(c.certPem).serialNumber);
  }
});
