/**
 * The pipelines' caches (src/pipelines/cache.ts): a second call with the same settings runs no text encoder
 * and builds no step graph, and gives the same bits as the first call and as an uncached model.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { img2img } from '../../src/pipelines/img2img.js';
import type { Runtime, Session } from '../../src/runtime/types.js';
import { type TinySetup, testFrame, tinySetup } from './tiny-model.js';

let setup: TinySetup;

before(async () => {
  setup = await tinySetup();
});
after(async () => {
  await setup?.close();
});

/** The session with a count of its runs. */
function counting(s: Session, runs: { n: number }): Session {
  return {
    get label() {
      return s.label;
    },
    get inputs() {
      return s.inputs;
    },
    get outputs() {
      return s.outputs;
    },
    get ep() {
      return s.ep;
    },
    run: (feeds, names, opts) => {
      runs.n++;
      return s.run(feeds, names, opts);
    },
    release: () => s.release(),
  };
}

/** The runtime with a record of the labels of the sessions it creates. */
function recording(rt: Runtime, labels: string[]): Runtime {
  return new Proxy(rt, {
    get(target, prop) {
      if (prop === 'createSession')
        return (model: string | Uint8Array, o?: { label?: string }) => {
          labels.push(o?.label ?? '?');
          return target.createSession(model, o);
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

test('a second call with the same settings reuses the prompt embeddings and the step graph, with the same bits', async () => {
  const loaded = await setup.model('cache-fp32');
  const textRuns = { n: 0 };
  const model: StableDiffusionModel = { ...loaded, textEncoder: counting(loaded.textEncoder, textRuns) };
  const labels: string[] = [];
  const runtime = recording(setup.runtime, labels);
  const frame = testFrame(64, 64, 3);
  // latentsOnDevice: the step graph runs on the CPU provider too (same numbers as the host loop).
  const options = { prompt: 'a watercolour painting', steps: 6, strength: 0.5, seed: 4, latentsOnDevice: true };

  const [first] = await img2img(model, runtime, [frame], options);
  assert.equal(textRuns.n, 2, 'prompt and negative prompt encoded once');
  assert.deepEqual(labels, ['ddim-step']);

  const [second] = await img2img(model, runtime, [frame], { ...options, seed: 5 });
  const [third] = await img2img(model, runtime, [frame], options);
  assert.equal(textRuns.n, 2, 'no text encoder run for the same prompts');
  assert.deepEqual(labels, ['ddim-step'], 'no second step graph');
  assert.ok(same(first!.data, third!.data), 'the same settings give the same bits');
  assert.ok(!same(first!.data, second!.data), 'another seed gives another image');

  // The same bits as a model whose caches are empty (another load of the same folder).
  const fresh = await setup.model('cache-fp32');
  const [uncached] = await img2img(fresh, setup.runtime, [frame], options);
  assert.ok(same(first!.data, uncached!.data));

  // Another prompt is encoded; guidance off needs no negative prompt and another step graph.
  await img2img(model, runtime, [frame], { ...options, prompt: 'an oil painting' });
  assert.equal(textRuns.n, 4);
  await img2img(model, runtime, [frame], { ...options, prompt: 'an oil painting', guidance: 1 });
  assert.equal(textRuns.n, 5);
  assert.deepEqual(labels, ['ddim-step', 'ddim-step']);
});
