/**
 * CLIPTextModel (transformers) as an ONNX graph, inputs and outputs as diffusers' ONNX export:
 *   input_ids int32 [batch, sequence] → last_hidden_state [batch, sequence, hidden], pooler_output [batch, hidden].
 * Token + position embeddings, causal self-attention, pre-LN encoder layers, final LayerNorm; the pooled
 * output is the hidden state at the end-of-text token (transformers' rule: the first eos_token_id, or the
 * largest id when the config has the legacy eos_token_id 2).
 */
import type { Model } from '../../onnx/ir.js';
import type { ClipTextConfig, SdConfig } from './config.js';
import { Net, type NetOptions } from './net.js';
import type { ParamSpec } from './weights.js';

/** A graph made by the builder, with the parameters it holds (name → shape and initialisation). */
export interface BuiltGraph {
  model: Model;
  params: Map<string, ParamSpec>;
}

export function buildTextEncoder(config: SdConfig, opts: NetOptions): BuiltGraph {
  const cfg: ClipTextConfig = config.text_encoder;
  const net = new Net('text_encoder', opts);
  const D = cfg.hidden_size;
  const P = cfg.max_position_embeddings;
  const ids = net.input('input_ids', 'int32', ['batch', 'sequence']);

  net.module('text_model', () => {
    const seqLen = net.op('Slice', [net.op('Shape', [ids]), net.ints([1]), net.ints([2])]);
    // 1. Embeddings: token table lookup plus learned positions 0..S-1 (the position_ids buffer, sliced).
    let x = net.module('embeddings', () => {
      const tokens = net.module('token_embedding', () =>
        net.op('Gather', [net.param('weight', [cfg.vocab_size, D], 'embedding'), ids]),
      );
      const positionIds = net.b.constant(
        Array.from({ length: P }, (_, i) => i),
        [1, P],
        'int64',
        'position_ids',
      );
      const posIds = net.op('Slice', [positionIds, net.ints([0]), seqLen, net.ints([1])]);
      const positions = net.module('position_embedding', () =>
        net.op('Gather', [net.param('weight', [P, D], 'embedding', undefined, 0.1), posIds]),
      );
      return net.op('Add', [tokens, positions]);
    });

    // 2. Causal mask [S, S]: 0 on and below the diagonal, the float type's lowest value above.
    const maskValues = new Array<number>(P * P);
    for (let r = 0; r < P; r++) for (let c = 0; c < P; c++) maskValues[r * P + c] = c > r ? net.minValue : 0;
    const mask = net.op('Slice', [
      net.floats(maskValues, [P, P]),
      net.ints([0, 0]),
      net.op('Concat', [seqLen, seqLen], { axis: 0 }),
      net.ints([0, 1]),
    ]);

    // 3. Encoder layers (pre-LN): x += attn(LN1 x); x += mlp(LN2 x).
    net.module('encoder', () => {
      for (let l = 0; l < cfg.num_hidden_layers; l++) {
        x = net.module(`layers.${l}`, () => {
          const h1 = net.layerNorm('layer_norm1', x, D, cfg.layer_norm_eps);
          const attn = net.module('self_attn', () => {
            const q = net.linear('q_proj', h1, D, D);
            const k = net.linear('k_proj', h1, D, D);
            const v = net.linear('v_proj', h1, D, D);
            return net.linear('out_proj', net.attend(q, k, v, cfg.num_attention_heads, D, mask), D, D);
          });
          const r = net.op('Add', [x, attn]);
          const h2 = net.layerNorm('layer_norm2', r, D, cfg.layer_norm_eps);
          const mlp = net.module('mlp', () => {
            const f = net.linear('fc1', h2, D, cfg.intermediate_size);
            const a = net.module('activation_fn', () => (cfg.hidden_act === 'gelu' ? net.gelu(f) : net.quickGelu(f)));
            return net.linear('fc2', a, cfg.intermediate_size, D);
          });
          return net.op('Add', [r, mlp]);
        });
      }
    });
    const last = net.layerNorm('final_layer_norm', x, D, cfg.layer_norm_eps, 'last_hidden_state');

    // 4. Pooled output: the hidden state at the end-of-text position of each prompt.
    const key =
      cfg.eos_token_id === 2
        ? ids
        : net.op('Cast', [net.op('Equal', [ids, net.b.constant([cfg.eos_token_id], [], 'int32', 'eos_token_id')])], {
            to: 6,
          });
    const eosIndex = net.op('ArgMax', [key], { axis: -1, keepdims: 0, select_last_index: 0 });
    net.op('GatherND', [last, net.op('Unsqueeze', [eosIndex, net.ints([1])])], { batch_dims: 1 }, 'pooler_output');
  });
  net.output('last_hidden_state', net.ftype, ['batch', 'sequence', D]);
  net.output('pooler_output', net.ftype, ['batch', D]);
  return { model: net.build(), params: net.params };
}
