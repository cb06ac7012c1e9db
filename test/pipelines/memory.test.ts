// The memory estimate a job is admitted by (src/pipelines/memory.ts): it depends on the working size, the batch,
// guidance and the model's UNet where that runs in host memory, never on how many frames the job has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type MemoryModel,
  SD1_UNET_ATTENTION,
  checkRunMemory,
  defaultJobMemoryLimit,
  estimateJobMemory,
} from '../../src/pipelines/memory.js';
import type { VidpriorError } from '../../src/errors.js';

const GiB = 2 ** 30;
const hd = { width: 1920, height: 1080 };
const work = { width: 896, height: 512 };
const guided = { batch: 1, guided: true };
const onGpu: MemoryModel = { vaeFactor: 8, hostUnetAttention: null };
const sd15OnCpu: MemoryModel = { vaeFactor: 8, hostUnetAttention: SD1_UNET_ATTENTION };

test('the estimate grows with the batch and the working size; a 1080p frame at 896×512 is far below one at its own size', () => {
  const one = estimateJobMemory(hd, work, guided, onGpu).bytes;
  assert.equal(estimateJobMemory(hd, work, { batch: 4, guided: true }, onGpu).bytes, 4 * one);
  const own = estimateJobMemory(hd, { width: 1920, height: 1088 }, guided, onGpu).bytes;
  assert.ok(own > 10 * one, `${own} vs ${one}`);
  // About 1.5 GiB at the default working size of a 1080p frame (the VAE's), under the 4 GiB a daemon must stay below.
  assert.ok(one > 0.5 * GiB && one < 3 * GiB, `${one}`);
  assert.equal(defaultJobMemoryLimit(24 * GiB), 12 * GiB);
});

test('an SD 1.5 UNet on the CPU: its attention is most of it, as measured (16.0 GiB beyond the weights), about half without guidance', () => {
  const cpu = estimateJobMemory(hd, work, guided, sd15OnCpu).bytes;
  assert.ok(cpu > 15.5 * GiB && cpu < 17.5 * GiB, `${cpu / GiB} GiB`);
  const unguided = estimateJobMemory(hd, work, { batch: 1, guided: false }, sd15OnCpu).bytes;
  assert.ok(unguided > 0.5 * cpu && unguided < 0.6 * cpu, `${unguided / GiB} GiB`);
  // The tiny preset's UNet (4 heads at half size) adds half a GiB to the VAE's figure (the GPU's).
  const gpu = estimateJobMemory(hd, work, guided, onGpu).bytes;
  const tiny = estimateJobMemory(hd, work, guided, { vaeFactor: 8, hostUnetAttention: { heads: 4, downsample: 2 } });
  assert.ok(tiny.bytes > gpu && tiny.bytes < gpu + 0.6 * GiB, `${tiny.bytes} vs ${gpu}`);
});

test("the VAE's latent size follows its factor: a factor-4 VAE attends over 4× the latents, 16× the scores", () => {
  const f8 = estimateJobMemory(hd, work, guided, onGpu).bytes;
  const f4 = estimateJobMemory(hd, work, guided, { vaeFactor: 4, hostUnetAttention: null }).bytes;
  assert.ok(f4 > 8 * f8, `${f4} vs ${f8}`);
});

test('checkRunMemory: within the limit nothing happens; over it, E_TOO_LARGE names the largest work size that fits', () => {
  // The working size at a short side, as 'resize' plans 16:9 frames (multiples of 64).
  const workingAt = (side: number) => ({ width: Math.round((side * 16) / 9 / 64) * 64, height: side });
  const check = (limit: number) =>
    checkRunMemory({
      original: hd,
      working: work,
      run: guided,
      model: sd15OnCpu,
      weightBytes: 4 * GiB,
      limit,
      limitSource: 'test',
      workingAt,
    });
  check(24 * GiB);
  assert.throws(
    () => check(12 * GiB),
    (err: VidpriorError) => {
      assert.equal(err.code, 'E_TOO_LARGE');
      assert.match(err.message, /worked on at 896×512, 1 at a time, need about 2\d\.\d\d GiB with the model's weights/);
      const side = Number(/--work-size (\d+) fits/.exec(err.message)?.[1]);
      const need = (s: number) => estimateJobMemory(hd, workingAt(s), guided, sd15OnCpu).bytes + 4 * GiB;
      assert.ok(need(side) <= 12 * GiB && need(side + 64) > 12 * GiB, `${side}`);
      return true;
    },
  );
  assert.throws(() => check(3 * GiB), /no working size fits/);
});
