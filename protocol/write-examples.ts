/**
 * Regenerates protocol/examples/*.json from protocol/examples.ts:
 *   npx tsc -p . && node dist/protocol/write-examples.js
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exampleFiles } from './example-json.js';

// dist/protocol/write-examples.js → <repo>/protocol/examples
const dir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol', 'examples');
mkdirSync(dir, { recursive: true });
for (const [name, text] of exampleFiles()) writeFileSync(join(dir, name), text);
console.log(`wrote ${exampleFiles().size} examples to ${dir}`);
