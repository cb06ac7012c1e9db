// The spec (PROTOCOL.md), the validators (messages.ts) and the example files stay in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { ERROR_CODES } from '../../src/errors.js';
import { CLIENT_MESSAGES, SERVER_MESSAGES, parseClientMessage, parseServerMessage } from '../../protocol/messages.js';
import { decode, encode } from '../../protocol/codec.js';
import { exampleFiles, fromJsonValue } from '../../protocol/example-json.js';
import { JOB_KINDS, describeParams } from '../../protocol/params.js';

const spec = readFileSync('protocol/PROTOCOL.md', 'utf8');

test('PROTOCOL.md lists every error code with its meaning', () => {
  for (const [code, meaning] of Object.entries(ERROR_CODES)) {
    assert.ok(
      spec.includes(`| \`${code}\` | ${meaning} |`),
      `${code} missing or its meaning differs from src/errors.ts`,
    );
  }
});

test('PROTOCOL.md describes every message type and job parameter', () => {
  for (const type of [...Object.keys(CLIENT_MESSAGES), ...Object.keys(SERVER_MESSAGES)]) {
    assert.ok(spec.includes(`| \`${type}\` |`), `message ${type} is not in the spec's tables`);
  }
  for (const kind of JOB_KINDS) {
    assert.ok(spec.includes(`**${kind}**`), `job kind ${kind} has no parameter section`);
    for (const name of Object.keys(describeParams(kind)))
      assert.ok(spec.includes(`\`${name}\``), `parameter ${kind}.${name} is not in the spec`);
  }
});

test('protocol/examples/*.json are current, validate for their direction and match the encoder byte for byte', () => {
  const files = exampleFiles();
  const onDisk = readdirSync('protocol/examples')
    .filter((f) => f.endsWith('.json'))
    .sort();
  assert.deepEqual(onDisk, [...files.keys()].sort(), 'example files differ: run node dist/protocol/write-examples.js');
  const seen = new Set<string>();
  for (const [name, text] of files) {
    assert.equal(
      readFileSync(`protocol/examples/${name}`, 'utf8'),
      text,
      `${name} is stale: run node dist/protocol/write-examples.js`,
    );
    for (const step of JSON.parse(text).steps) {
      const message = fromJsonValue(step.message) as { type: string };
      const parsed = step.from === 'client' ? parseClientMessage(message) : parseServerMessage(message);
      assert.equal(parsed.type, message.type);
      seen.add(`${step.from}:${message.type}`);
      const bytes = Buffer.from(step.msgpack_hex, 'hex');
      assert.deepEqual(Buffer.from(encode(message)), bytes, `${name}: ${message.type} encodes differently`);
      assert.deepEqual(normalize(decode(bytes)), normalize(message), `${name}: ${message.type} decodes differently`);
    }
  }
  for (const type of Object.keys(CLIENT_MESSAGES)) assert.ok(seen.has(`client:${type}`), `no example sends ${type}`);
  for (const type of Object.keys(SERVER_MESSAGES)) assert.ok(seen.has(`daemon:${type}`), `no example receives ${type}`);
});

/** Buffers and Uint8Arrays compare as byte arrays. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}
