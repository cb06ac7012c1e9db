import { after, before, describe, it } from 'node:test';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { checkCase } from './gradcheck.js';

interface ConvCase {
  x: number[];
  w: number[];
  attrs: Record<string, number[] | number | string>;
  bias?: boolean;
}

describe('autodiff: Conv and ConvTranspose', () => {
  let rt: Runtime;
  before(async () => {
    rt = await openRuntime({ ep: 'cpu', cpuThreads: 1 });
  });
  after(async () => {
    await rt.close();
  });

  const convs: [string, ConvCase][] = [
    [
      '3×3 pad 1 (SD ResNet conv), bias',
      { x: [2, 3, 5, 5], w: [4, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    ],
    [
      '3×3 stride 2 pad 1 (SD downsample), odd size',
      { x: [1, 2, 7, 7], w: [3, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] }, bias: true },
    ],
    [
      'stride 2, even size (output_padding needed)',
      { x: [1, 2, 6, 6], w: [2, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
    ],
    ['1×1 projection', { x: [2, 4, 3, 3], w: [5, 4, 1, 1], attrs: {}, bias: true }],
    [
      'dilation 2, asymmetric pads, non-square kernel',
      { x: [1, 2, 7, 6], w: [3, 2, 3, 2], attrs: { dilations: [2, 2], pads: [2, 0, 1, 1] } },
    ],
    [
      'stride 3 and dilation 2 with leftover rows',
      { x: [1, 1, 9, 8], w: [2, 1, 2, 3], attrs: { strides: [3, 2], dilations: [2, 1], pads: [0, 1, 0, 0] } },
    ],
    ['group 2', { x: [2, 4, 5, 5], w: [6, 2, 3, 3], attrs: { group: 2, pads: [1, 1, 1, 1] }, bias: true }],
    ['depthwise stride 2', { x: [1, 3, 6, 6], w: [3, 1, 3, 3], attrs: { group: 3, strides: [2, 2] } }],
    [
      'auto_pad SAME_UPPER stride 2',
      { x: [1, 2, 6, 5], w: [2, 2, 3, 3], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } },
    ],
    ['1-D', { x: [2, 3, 9], w: [2, 3, 3], attrs: { strides: [2], pads: [1, 1] }, bias: true }],
  ];
  for (const [label, c] of convs) {
    it(`Conv ${label}`, async () => {
      await checkCase(rt, 'conv', {
        opset: 14,
        inputs: { x: { dims: c.x }, w: { dims: c.w }, ...(c.bias ? { b: { dims: [c.w[0]!] } } : {}) },
        build: (b, v) => b.op('Conv', [v.x!, v.w!, v.b], c.attrs),
      });
    });
  }

  const transposed: [string, ConvCase][] = [
    [
      'stride 2 pad 1 output_padding 1, bias',
      {
        x: [1, 3, 4, 4],
        w: [3, 2, 3, 3],
        attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] },
        bias: true,
      },
    ],
    ['stride 1, dilation 2', { x: [2, 2, 3, 4], w: [2, 3, 2, 2], attrs: { dilations: [2, 2] } }],
    ['group 2, stride 2', { x: [2, 4, 3, 3], w: [4, 3, 3, 3], attrs: { group: 2, strides: [2, 2] }, bias: true }],
    [
      'depthwise, pads, dilation',
      { x: [1, 3, 4, 4], w: [3, 1, 2, 2], attrs: { group: 3, pads: [1, 0, 0, 1], dilations: [2, 2] } },
    ],
  ];
  for (const [label, c] of transposed) {
    it(`ConvTranspose ${label}`, async () => {
      const groups = Number(c.attrs.group ?? 1);
      await checkCase(rt, 'convt', {
        opset: 17,
        inputs: { x: { dims: c.x }, w: { dims: c.w }, ...(c.bias ? { b: { dims: [c.w[1]! * groups] } } : {}) },
        build: (b, v) => b.op('ConvTranspose', [v.x!, v.w!, v.b], c.attrs),
      });
    });
  }
});
