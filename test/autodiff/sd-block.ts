/**
 * A small Stable-Diffusion-shaped block for mixed-graph gradient checks, written the way the TorchScript
 * exporter writes it: GroupNorm as Reshape → InstanceNormalization → Reshape → Mul → Add, SiLU as x·Sigmoid(x),
 * a ResNet block with a time-embedding projection and a 1×1 skip conv, then a transformer block (proj_in,
 * LayerNorm, self- and cross-attention with heads split by Reshape/Transpose, GEGLU feed-forward whose chunk is
 * a Shape-computed Slice, exact Gelu via Erf, proj_out), and a nearest ×2 upsample conv at the end.
 * opset 14 writes LayerNorm as the ReduceMean/Pow/Sqrt chain; opset 17 uses LayerNormalization; like the dynamo
 * exporter, opset 18+ chunks with Split(num_outputs), opset 20 uses Gelu, and opset 21 GroupNormalization.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/ir.js';
import { Rng } from '../../src/random.js';

export interface BlockSpec {
  opset: number;
  batch: number;
  cIn: number;
  c: number;
  size: number;
  groups: number;
  heads: number;
  ctxLen: number;
  ctxDim: number;
  tembDim: number;
}

export function buildSdBlock(s: BlockSpec): { model: Model; weights: string[] } {
  const b = new GraphBuilder('sd_block', { opset: s.opset });
  const rng = new Rng(5);
  const weights: string[] = [];
  const w = (name: string, dims: number[], scale = 0.3, offset = 0) => {
    const n = dims.reduce((a, d) => a * d, 1);
    const v = b.initializer(
      name,
      'float32',
      dims,
      Float32Array.from({ length: n }, () => offset + scale * rng.normal()),
    );
    weights.push(v);
    return v;
  };
  const x = b.input('sample', 'float32', [s.batch, s.cIn, s.size, s.size]);
  const temb = b.input('temb', 'float32', [s.batch, s.tembDim]);
  const context = b.input('context', 'float32', [s.batch, s.ctxLen, s.ctxDim]);
  const hw = s.size * s.size;

  const groupNorm = (v: string, ch: number, name: string) => {
    if (s.opset >= 21) {
      return b.op('GroupNormalization', [v, w(`${name}.weight`, [ch], 0.2, 1), w(`${name}.bias`, [ch], 0.1)], {
        num_groups: s.groups,
        epsilon: 1e-5,
      });
    }
    const grouped = b.op('Reshape', [v, b.ints([0, s.groups, -1])]);
    const ones = b.constant(new Array(s.groups).fill(1), [s.groups], 'float32');
    const zeros = b.constant(new Array(s.groups).fill(0), [s.groups], 'float32');
    const normed = b.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: 1e-5 });
    const back = b.op('Reshape', [normed, b.op('Shape', [v])]);
    return b.op('Add', [
      b.op('Mul', [back, w(`${name}.weight`, [ch, 1, 1], 0.2, 1)]),
      w(`${name}.bias`, [ch, 1, 1], 0.1),
    ]);
  };
  const silu = (v: string) => b.op('Mul', [v, b.op('Sigmoid', [v])]);
  const conv = (v: string, cin: number, cout: number, k: number, name: string) =>
    b.op(
      'Conv',
      [v, w(`${name}.weight`, [cout, cin, k, k], 0.5 / Math.sqrt(cin * k * k)), w(`${name}.bias`, [cout], 0.1)],
      { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0] },
    );
  const linear = (v: string, din: number, dout: number, name: string, bias = true) => {
    const y = b.op('MatMul', [v, w(`${name}.weight`, [din, dout], 1 / Math.sqrt(din))]);
    return bias ? b.op('Add', [y, w(`${name}.bias`, [dout], 0.1)]) : y;
  };
  const layerNorm = (v: string, name: string) => {
    const g = w(`${name}.weight`, [s.c], 0.2, 1),
      beta = w(`${name}.bias`, [s.c], 0.1);
    if (s.opset >= 17) return b.op('LayerNormalization', [v, g, beta], { axis: -1, epsilon: 1e-5 });
    const mean = b.op('ReduceMean', [v], { axes: [-1] });
    const xc = b.op('Sub', [v, mean]);
    const variance = b.op('ReduceMean', [b.op('Pow', [xc, b.scalar(2)])], { axes: [-1] });
    const normed = b.op('Div', [xc, b.op('Sqrt', [b.op('Add', [variance, b.scalar(1e-5)])])]);
    return b.op('Add', [b.op('Mul', [normed, g]), beta]);
  };
  const heads = (v: string, len: number) =>
    b.op('Transpose', [b.op('Reshape', [v, b.ints([s.batch, len, s.heads, s.c / s.heads])])], { perm: [0, 2, 1, 3] });
  const attention = (v: string, kv: string, kvLen: number, kvDim: number, name: string) => {
    const q = heads(linear(v, s.c, s.c, `${name}.to_q`, false), hw);
    const k = heads(linear(kv, kvDim, s.c, `${name}.to_k`, false), kvLen);
    const val = heads(linear(kv, kvDim, s.c, `${name}.to_v`, false), kvLen);
    const scores = b.op('Mul', [
      b.op('MatMul', [q, b.op('Transpose', [k], { perm: [0, 1, 3, 2] })]),
      b.scalar(1 / Math.sqrt(s.c / s.heads)),
    ]);
    const out = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), val]);
    const merged = b.op('Reshape', [b.op('Transpose', [out], { perm: [0, 2, 1, 3] }), b.ints([s.batch, hw, s.c])]);
    return linear(merged, s.c, s.c, `${name}.to_out.0`);
  };

  // 1. ResNet block.
  let h = conv(silu(groupNorm(x, s.cIn, 'resnet.norm1')), s.cIn, s.c, 3, 'resnet.conv1');
  const t = linear(silu(temb), s.tembDim, s.c, 'resnet.time_emb_proj');
  h = b.op('Add', [h, b.op('Unsqueeze', [b.op('Unsqueeze', [t, b.ints([2])]), b.ints([3])])]);
  h = conv(silu(groupNorm(h, s.c, 'resnet.norm2')), s.c, s.c, 3, 'resnet.conv2');
  const res = b.op('Add', [conv(x, s.cIn, s.c, 1, 'resnet.conv_shortcut'), h]);

  // 2. Transformer block.
  let a = conv(groupNorm(res, s.c, 'attn.norm'), s.c, s.c, 1, 'attn.proj_in');
  a = b.op('Reshape', [b.op('Transpose', [a], { perm: [0, 2, 3, 1] }), b.ints([s.batch, hw, s.c])]);
  const n1 = layerNorm(a, 'attn.norm1');
  a = b.op('Add', [attention(n1, n1, hw, s.c, 'attn.attn1'), a]);
  a = b.op('Add', [attention(layerNorm(a, 'attn.norm2'), context, s.ctxLen, s.ctxDim, 'attn.attn2'), a]);
  const ff = linear(layerNorm(a, 'attn.norm3'), s.c, 4 * s.c, 'attn.ff.net.0.proj');
  let value: string, gate: string;
  if (s.opset >= 18) {
    [value, gate] = b.opMulti('Split', [ff], 2, { axis: -1, num_outputs: 2 }) as [string, string];
  } else {
    const half = b.op('Div', [b.op('Gather', [b.op('Shape', [ff]), b.ints([-1])]), b.ints([2])]);
    value = b.op('Slice', [ff, b.ints([0]), half, b.ints([-1])]);
    gate = b.op('Slice', [ff, half, b.op('Mul', [half, b.ints([2])]), b.ints([-1])]);
  }
  const gelu =
    s.opset >= 20
      ? b.op('Gelu', [gate])
      : b.op('Mul', [
          b.op('Mul', [gate, b.op('Add', [b.op('Erf', [b.op('Div', [gate, b.scalar(Math.SQRT2)])]), b.scalar(1)])]),
          b.scalar(0.5),
        ]);
  a = b.op('Add', [linear(b.op('Mul', [value, gelu]), 2 * s.c, s.c, 'attn.ff.net.2'), a]);
  a = b.op('Transpose', [b.op('Reshape', [a, b.ints([s.batch, s.size, s.size, s.c])])], { perm: [0, 3, 1, 2] });
  const out = b.op('Add', [conv(a, s.c, s.c, 1, 'attn.proj_out'), res]);

  // 3. Upsample ×2 (nearest) + conv, as the UNet's up blocks do.
  const up = b.op('Resize', [out, '', b.constant([1, 1, 2, 2], [4], 'float32')], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
  b.output(conv(up, s.c, s.c, 3, 'upsampler.conv'), 'out');
  return { model: b.build(), weights };
}
