/**
 * Checks feeds against a session's inputs on the main thread, before anything is posted, so that a wrong name,
 * element type or shape gets an error naming the session, the input and what the model wants.
 */
import { VidpriorError } from '../errors.js';
import { sizeOf } from '../tensor.js';
import type { Feed, IoMeta } from './types.js';
import { isGpuTensor } from './types.js';

const fmtDims = (dims: readonly (number | string)[]): string => `[${dims.join(', ')}]`;

export function checkFeeds(label: string, inputs: readonly IoMeta[], feeds: Record<string, Feed>): void {
  const known = new Set(inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!known.has(name)) {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${label}: the model has no input named '${name}' (its inputs: ${[...known].join(', ')})`,
        { label, input: name },
      );
    }
  }
  for (const meta of inputs) {
    const feed = feeds[meta.name];
    if (feed === undefined) {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${label}: input '${meta.name}' (${meta.type} ${fmtDims(meta.dims)}) is missing`,
        { label, input: meta.name },
      );
    }
    checkFeed(label, meta, feed);
  }
}

function checkFeed(label: string, meta: IoMeta, feed: Feed): void {
  const name = meta.name;
  if (typeof feed !== 'object' || feed === null || !Array.isArray(feed.dims)) {
    throw new VidpriorError('E_BAD_REQUEST', `${label}: input '${name}' is not a tensor`, { label, input: name });
  }
  if (feed.type !== meta.type) {
    const hint =
      meta.type === 'float16' && feed.type === 'float32'
        ? " (convert with castFloat(t, 'float16') from src/tensor.ts)"
        : '';
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${label}: input '${name}' must be ${meta.type}, got ${feed.type}${hint}`,
      { label, input: name, expected: meta.type, got: feed.type },
    );
  }
  // Empty model dims mean a scalar or an unknown shape (ORT reports both alike): only a rank > 0 is checked.
  const dimsOk =
    meta.dims.length === 0 ||
    (feed.dims.length === meta.dims.length && meta.dims.every((d, i) => typeof d === 'string' || d === feed.dims[i]));
  if (!dimsOk) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${label}: input '${name}' has dims ${fmtDims(feed.dims)}, the model wants ${fmtDims(meta.dims)}`,
      { label, input: name, expected: meta.dims, got: [...feed.dims] },
    );
  }
  if (!isGpuTensor(feed)) {
    const n = sizeOf(feed.dims);
    if (!feed.data || feed.data.length !== n) {
      throw new VidpriorError(
        'E_SHAPE',
        `${label}: input '${name}' has ${feed.data?.length ?? 0} elements but its dims ${fmtDims(feed.dims)} need ${n}`,
        { label, input: name },
      );
    }
  }
}

export function checkOutputNames(label: string, outputs: readonly IoMeta[], names: readonly string[]): void {
  for (const name of names) {
    if (!outputs.some((o) => o.name === name)) {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${label}: the model has no output named '${name}' (its outputs: ${outputs.map((o) => o.name).join(', ')})`,
        { label, output: name },
      );
    }
  }
}
