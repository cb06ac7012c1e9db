/**
 * The layers of an ONNX UNet or text encoder a LoRA can adapt, by diffusers / transformers module path
 * (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`, `text_model.encoder.layers.0.self_attn.q_proj`),
 * found from the node names exporters write (`/down_blocks.1/…/to_q/MatMul`, possibly under a wrapper scope
 * such as `/u/` or a text model exported from its inner module, `/encoder/layers.0/…`) or, failing that, from
 * the weight's own name. Each layer says how its weight is stored:
 *   MatMul: the Linear's weight transposed, [in, out] (TorchScript's `onnx::MatMul_*` initializers), or
 *           [out, in] behind a Transpose node (dynamo exports);
 *   Gemm:   [out, in] with transB = 1 (PyTorch's layout), else [in, out];
 *   Conv:   [out, in, kh, kw] (a 1×1 conv is a Linear with a [out, in, 1, 1] weight).
 * A weight stored as [out, K] is "rows"; one stored as [K, out] is "columns" (K = in · kh · kw).
 */
import type { Model, Node, TensorValue } from '../../onnx/ir.js';
import type { LoraComponent } from './lora-file.js';

export interface LayerWeight {
  module: string;
  op: 'MatMul' | 'Gemm' | 'Conv';
  /** The node that consumes the weight. */
  node: Node;
  /** The initializer holding the weight. */
  tensor: TensorValue;
  /** The node between the initializer and `node` (Transpose, Cast or Identity), if any. */
  via: Node | null;
  layout: 'rows' | 'columns';
  outFeatures: number;
  /** in · kh · kw: the length of one output's row of weights. */
  inFeatures: number;
}

/** First module names of a diffusers UNet2DConditionModel. */
const UNET_ROOTS = new Set([
  'conv_in',
  'time_proj',
  'time_embedding',
  'down_blocks',
  'mid_block',
  'up_blocks',
  'conv_norm_out',
  'conv_out',
]);
/** First module names inside transformers' CLIPTextTransformer (`text_model.`). */
const TEXT_ROOTS = new Set(['embeddings', 'encoder', 'final_layer_norm']);

/** The module path in `parts` (module names, dotted indices kept), anchored at the component's root. */
function anchor(parts: string[], component: LoraComponent): string | null {
  for (let i = 0; i < parts.length; i++) {
    const head = parts[i]!.split('.')[0]!;
    if (component === 'unet' && UNET_ROOTS.has(head)) return parts.slice(i).join('.');
    if (component === 'text_encoder') {
      if (head === 'text_model') return parts.slice(i).join('.');
      if (TEXT_ROOTS.has(head)) return ['text_model', ...parts.slice(i)].join('.');
    }
  }
  return null;
}

/** `/u/down_blocks.0/attentions.0/proj_in/Conv` → `down_blocks.0.attentions.0.proj_in`. */
function moduleFromNode(name: string, component: LoraComponent): string | null {
  if (!name.startsWith('/')) return null;
  const parts = name.split('/').filter(Boolean);
  parts.pop(); // the op's own name (MatMul, Conv_1…)
  return anchor(parts, component);
}

/** `u.down_blocks.0.attentions.0.proj_in.weight` → `down_blocks.0.attentions.0.proj_in`. */
function moduleFromWeight(name: string, component: LoraComponent): string | null {
  if (!name.endsWith('.weight')) return null;
  // Split into module names, keeping `blocks.3`-style indices with their module.
  const parts = name
    .slice(0, -'.weight'.length)
    .split('.')
    .reduce<string[]>((acc, p) => {
      if (/^\d+$/.test(p) && acc.length) acc[acc.length - 1] += `.${p}`;
      else acc.push(p);
      return acc;
    }, []);
  return anchor(parts, component);
}

/** The adaptable layers of `model`, by module path (the first node of a module wins). */
export function findLayers(model: Model, component: LoraComponent): Map<string, LayerWeight> {
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const weightOf = (value: string): { tensor: TensorValue; via: Node | null } | null => {
    const direct = inits.get(value);
    if (direct) return { tensor: direct, via: null };
    const p = producer.get(value);
    if (p && ['Transpose', 'Cast', 'Identity'].includes(p.opType) && inits.has(p.inputs[0]!))
      return { tensor: inits.get(p.inputs[0]!)!, via: p };
    return null;
  };
  const layers = new Map<string, LayerWeight>();
  for (const node of g.nodes) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm' && node.opType !== 'Conv') continue;
    const w = node.inputs[1] ? weightOf(node.inputs[1]) : null;
    if (!w) continue;
    const { tensor, via } = w;
    const module = moduleFromNode(node.name, component) ?? moduleFromWeight(tensor.name, component);
    if (!module || layers.has(module)) continue;
    const transposed = via?.opType === 'Transpose';
    if (transposed) {
      const perm = via!.attributes.perm;
      if (perm && perm.type === 'ints' && perm.value.join() !== '1,0') continue;
    }
    const dims = tensor.dims;
    if (node.opType === 'Conv') {
      const group = node.attributes.group;
      if (dims.length !== 4 || (group && group.type === 'int' && group.value !== 1)) continue;
      layers.set(module, {
        module,
        op: 'Conv',
        node,
        tensor,
        via,
        layout: 'rows',
        outFeatures: dims[0]!,
        inFeatures: dims[1]! * dims[2]! * dims[3]!,
      });
      continue;
    }
    if (dims.length !== 2) continue;
    let rows: boolean;
    if (node.opType === 'Gemm') {
      const tb = node.attributes.transB;
      rows = (tb?.type === 'int' && tb.value === 1) !== transposed;
    } else {
      rows = transposed;
    }
    layers.set(module, {
      module,
      op: node.opType,
      node,
      tensor,
      via,
      layout: rows ? 'rows' : 'columns',
      outFeatures: rows ? dims[0]! : dims[1]!,
      inFeatures: rows ? dims[1]! : dims[0]!,
    });
  }
  return layers;
}

const RESNET_LDM: Record<string, string> = {
  norm1: 'in_layers.0',
  conv1: 'in_layers.2',
  time_emb_proj: 'emb_layers.1',
  norm2: 'out_layers.0',
  conv2: 'out_layers.3',
  conv_shortcut: 'skip_connection',
};

/**
 * The original LDM name (`input_blocks.4.1.transformer_blocks.0.attn1.to_q`) of a diffusers UNet module, as
 * some kohya files and A1111 name layers. `layers` is the UNet's module set (the block layout comes from it).
 */
export function ldmNames(modules: Iterable<string>): Map<string, string> {
  const all = [...modules];
  let perBlock = 0;
  for (const m of all) {
    const r = /^down_blocks\.0\.resnets\.(\d+)\./.exec(m);
    if (r) perBlock = Math.max(perBlock, Number(r[1]) + 1);
  }
  const upHasAttention = (i: number) => all.some((m) => m.startsWith(`up_blocks.${i}.attentions.`));
  const resnet = (rest: string) => {
    const [head, ...tail] = rest.split('.');
    return [RESNET_LDM[head!] ?? head, ...tail].join('.');
  };
  const block = (i: string, j: string, offset: number) => Number(i) * (perBlock + 1) + Number(j) + offset;
  const rules: [RegExp, (r: RegExpExecArray) => string][] = [
    [/^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (r) => `input_blocks.${block(r[1]!, r[2]!, 1)}.0.${resnet(r[3]!)}`],
    [/^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/, (r) => `input_blocks.${block(r[1]!, r[2]!, 1)}.1.${r[3]}`],
    [/^down_blocks\.(\d+)\.downsamplers\.0\.conv$/, (r) => `input_blocks.${block(r[1]!, String(perBlock), 1)}.0.op`],
    [/^mid_block\.resnets\.(\d+)\.(.+)$/, (r) => `middle_block.${2 * Number(r[1])}.${resnet(r[2]!)}`],
    [/^mid_block\.attentions\.0\.(.+)$/, (r) => `middle_block.1.${r[1]}`],
    [/^up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (r) => `output_blocks.${block(r[1]!, r[2]!, 0)}.0.${resnet(r[3]!)}`],
    [/^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/, (r) => `output_blocks.${block(r[1]!, r[2]!, 0)}.1.${r[3]}`],
    [
      /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/,
      (r) => `output_blocks.${block(r[1]!, String(perBlock), 0)}.${upHasAttention(Number(r[1])) ? 2 : 1}.conv`,
    ],
    [/^conv_in$/, () => 'input_blocks.0.0'],
    [/^time_embedding\.linear_1$/, () => 'time_embed.0'],
    [/^time_embedding\.linear_2$/, () => 'time_embed.2'],
    [/^conv_norm_out$/, () => 'out.0'],
    [/^conv_out$/, () => 'out.2'],
  ];
  const out = new Map<string, string>();
  for (const m of all) {
    for (const [pattern, name] of rules) {
      const r = pattern.exec(m);
      if (r) {
        out.set(m, name(r));
        break;
      }
    }
  }
  return out;
}

/** kohya's form of a module name: dots become underscores (`down_blocks_0_attentions_0_proj_in`). */
export function kohyaName(module: string): string {
  return module.replace(/\./g, '_');
}
