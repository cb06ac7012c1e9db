/**
 * The GPU session's reporting (bench/profile.ts, bench/gpu/summary.ts) on synthetic records: GPU kernel times
 * preferred over CPU node times, ratios to PyTorch only for correct variants, and a stylize run cut by its
 * timeout still summarised from its progress lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeProfile } from '../../bench/profile.js';
import { summarize } from '../../bench/gpu/summary.js';

test('a profile is summarised from GPU timestamps when it has them, else from node times', () => {
  const gpu = summarizeProfile([
    { cat: 'Node', name: 'x_kernel_time', dur: 999, args: { op_name: 'Conv' } },
    { cat: 'Api', name: '/a/Conv&Conv&Conv2dMM', dur: 300 },
    { cat: 'Api', name: '/b/Conv&Conv&Conv2dMM', dur: 300 },
    { cat: 'Api', name: '/c/MultiHeadAttention&MultiHeadAttention&FlashAttention', dur: 400 },
  ]);
  assert.equal(gpu.source, 'gpu-timestamps');
  assert.equal(gpu.totalMs, 1);
  assert.deepEqual(
    gpu.byOp.map((e) => [e.name, e.share, e.count]),
    [
      ['Conv', 0.6, 2],
      ['MultiHeadAttention', 0.4, 1],
    ],
  );
  assert.equal(gpu.byKernel[0]!.name, 'Conv2dMM');
  const cpu = summarizeProfile([
    { cat: 'Session', name: 'model_run', dur: 5000 },
    { cat: 'Node', name: 'a_kernel_time', dur: 750, args: { op_name: 'MatMul', provider: 'CPUExecutionProvider' } },
    { cat: 'Node', name: 'b_kernel_time', dur: 250, args: { op_name: 'Add', provider: 'CPUExecutionProvider' } },
  ]);
  assert.equal(cpu.source, 'cpu-node-times');
  assert.deepEqual(
    cpu.byOp.map((e) => [e.name, e.share]),
    [
      ['MatMul', 0.75],
      ['Add', 0.25],
    ],
  );
});

test('the summary gives ratios to PyTorch in the same call, none to an incorrect variant', () => {
  const md = summarize(
    [
      { phase: 'session', preset: 'sd15', ep: 'webgpu', gpu: 'NVIDIA H200', cpus: 16, date: '2026-12-04' },
      { phase: 'torch', torch: '2.11', infer_steps_per_s_fp32: 16, infer_steps_per_s_fp16: 20 },
      {
        phase: 'unet',
        variant: 'original',
        correct: true,
        maxAbsDiff: 0,
        stepsPerSecondResident: 4,
        latent: [2, 4, 64, 64],
      },
      { phase: 'unet', variant: 'fused', correct: false, maxAbsDiff: 0.8, stepsPerSecondResident: 12 },
      { phase: 'unet', variant: 'fused-geglu-fp16', correct: true, maxAbsDiff: 0.01, stepsPerSecondResident: 24 },
      { phase: 'unet', variant: 'fused-fp16', skipped: 'deadline' },
      { phase: 'status', name: 'stylize', rc: 124, timedOut: true, seconds: 130, budget: 130 },
    ],
    [
      { event: 'loaded', seconds: 20 },
      { event: 'progress', phase: 'frame', frame: 1, seconds: 24 },
      { event: 'progress', phase: 'frame', frame: 2, seconds: 26 },
      { event: 'progress', phase: 'frame', frame: 3, seconds: 28 },
    ],
  );
  assert.match(md, /\| PyTorch eager fp32 \| 16 \| 1\.00× \| 0\.80× \|/);
  assert.match(md, /\| original \| 4 \| 0\.25× \| 0\.20× \| 0 \|/);
  assert.match(md, /\| fused \| 12 \| — \| — \| 0\.8 \| .*\*\*INCORRECT\*\*/);
  assert.match(md, /\| fused-geglu-fp16 \| 24 \| 1\.50× \| 1\.20× \| 0\.01 \|/);
  assert.match(md, /\| fused-fp16 \| — .* skipped: deadline \|/);
  assert.match(md, /3 frames done, first at 24 s, steady 0\.5 frames\/s, model loaded at 20 s/);
  assert.match(md, /\| stylize \| 124 \(timed out\) \| 130 \| 130 \|/);
});
