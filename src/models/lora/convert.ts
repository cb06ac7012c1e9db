/**
 * LoRA files between kohya's layout (what A1111 and ComfyUI load) and peft's (what diffusers and vidprior
 * write), tensor for tensor: the down/up weights keep their bytes and dtype, only the keys change:
 *   peft   unet.<module>.lora_A.weight / lora_B.weight          text_encoder.<module>.…
 *   kohya  lora_unet_<module with _>.lora_down.weight / lora_up.weight, .alpha    lora_te_<…>
 * peft keeps alpha in the `lora_adapter_metadata` JSON; kohya in a scalar `.alpha` tensor per layer. Going to
 * kohya, each layer gets its alpha tensor (float32) and kohya's `ss_network_*` metadata is added (and named in
 * `vidprior_added_metadata`); going back to peft, the alphas return to the metadata and the added keys are
 * dropped, so peft → kohya → peft gives back the same file byte for byte. kohya's underscored names are
 * turned back into module paths with the vocabulary of diffusers' UNet and transformers' CLIP module names.
 */
import { VidpriorError } from '../../errors.js';
import type { SafeTensor, SafetensorsFile } from '../../training/safetensors.js';
import { kohyaName } from './layers.js';
import { type LoraComponent, classifyLoraKey, parseLora, peftAlpha } from './lora-file.js';

export type LoraLayout = 'kohya' | 'peft';

/** Module names that contain underscores (everything else is split at `_`). */
const COMPOUND = [
  'down_blocks',
  'up_blocks',
  'mid_block',
  'transformer_blocks',
  'to_q',
  'to_k',
  'to_v',
  'to_out',
  'proj_in',
  'proj_out',
  'conv_shortcut',
  'time_emb_proj',
  'conv_in',
  'conv_out',
  'conv_norm_out',
  'time_embedding',
  'linear_1',
  'linear_2',
  'text_model',
  'self_attn',
  'q_proj',
  'k_proj',
  'v_proj',
  'out_proj',
  'layer_norm1',
  'layer_norm2',
  'final_layer_norm',
  'token_embedding',
  'position_embedding',
  // LDM names (lora_unet_input_blocks_4_1_…)
  'input_blocks',
  'middle_block',
  'output_blocks',
  'in_layers',
  'out_layers',
  'emb_layers',
  'skip_connection',
  'time_embed',
].map((c) => c.split('_'));

/** kohya's `down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0` → the dotted module path. */
export function moduleFromKohya(name: string): string {
  const words = name.split('_');
  const parts: string[] = [];
  for (let i = 0; i < words.length; ) {
    let taken = 1;
    for (const c of COMPOUND) {
      if (c.length > taken && c.every((w, k) => words[i + k] === w)) taken = c.length;
    }
    parts.push(words.slice(i, i + taken).join('_'));
    i += taken;
  }
  return parts.join('.');
}

const PREFIX: Record<LoraLayout, Record<LoraComponent, string>> = {
  kohya: { unet: 'lora_unet_', text_encoder: 'lora_te_' },
  peft: { unet: 'unet.', text_encoder: 'text_encoder.' },
};

/** kohya metadata a kohya-layout file carries (A1111 shows it; some tools read the rank and alpha from it). */
function kohyaMetadata(rank: number, alpha: number): Record<string, string> {
  return {
    ss_network_module: 'networks.lora',
    ss_network_dim: String(rank),
    ss_network_alpha: String(alpha),
    ss_base_model_version: 'sd_v1',
  };
}

/** Converts a decoded LoRA file to `to`; throws E_ADAPTER for keys that are not plain LoRA. */
export function convertLora(file: SafetensorsFile, to: LoraLayout, source: string): SafetensorsFile {
  const lora = parseLora(file, source); // validates every key and resolves each layer's rank and alpha
  const layerOf = new Map(lora.entries.map((e) => [`${e.component}|${e.name}`, e]));
  const tensors = new Map<string, SafeTensor>();
  /** alpha per component → layers with it, to tell the common alpha from exceptions. */
  const alphas = new Map<LoraComponent, Map<number, string[]>>();
  const ranks = new Map<LoraComponent, number>();
  const stems = new Set<string>();
  for (const [key, t] of file.tensors) {
    const part = classifyLoraKey(key, source)!;
    const entry = layerOf.get(`${part.component}|${part.name}`)!;
    const module = part.style === 'kohya' ? moduleFromKohya(part.name) : part.name;
    const stem =
      to === 'kohya'
        ? `${PREFIX.kohya[part.component]}${kohyaName(module)}`
        : `${PREFIX.peft[part.component]}${module}`;
    if (part.role === 'alpha') continue; // written below, per layer
    const suffix =
      to === 'kohya'
        ? part.role === 'down'
          ? 'lora_down.weight'
          : 'lora_up.weight'
        : part.role === 'down'
          ? 'lora_A.weight'
          : 'lora_B.weight';
    if (tensors.has(`${stem}.${suffix}`)) {
      throw new VidpriorError('E_ADAPTER', `${source}: two keys give ${stem}.${suffix} (one is ${key})`, { key });
    }
    tensors.set(`${stem}.${suffix}`, t);
    if (stems.has(stem)) continue;
    stems.add(stem);
    const byAlpha = alphas.get(part.component) ?? new Map<number, string[]>();
    byAlpha.set(entry.alpha, [...(byAlpha.get(entry.alpha) ?? []), stem]);
    alphas.set(part.component, byAlpha);
    ranks.set(part.component, Math.max(ranks.get(part.component) ?? 0, entry.rank));
  }
  const metadata: Record<string, string> = { ...file.metadata };
  if (to === 'kohya') {
    for (const byAlpha of alphas.values())
      for (const [alpha, list] of byAlpha)
        for (const stem of list)
          tensors.set(`${stem}.alpha`, { type: 'float32', dims: [], data: Float32Array.of(alpha) });
    const first = [...alphas.values()][0]!;
    const added = Object.entries(kohyaMetadata(Math.max(...ranks.values()), [...first.keys()][0]!)).filter(
      ([k]) => !(k in metadata),
    );
    for (const [k, v] of added) metadata[k] = v;
    if (added.length) metadata.vidprior_added_metadata = added.map(([k]) => k).join(',');
    return { tensors, metadata };
  }
  // peft: one lora_alpha per component in the metadata (the most common), exceptions in alpha_pattern.
  for (const k of (metadata.vidprior_added_metadata ?? '').split(',')) if (k) delete metadata[k];
  delete metadata.vidprior_added_metadata;
  const consistent = [...alphas].every(([component, byAlpha]) =>
    [...byAlpha].every(([alpha, list]) =>
      list.every((stem) => peftAlpha(metadata, component, stem.slice(stem.indexOf('.') + 1)) === alpha),
    ),
  );
  if (!consistent) {
    let cfg: Record<string, unknown> = {};
    try {
      cfg = JSON.parse(metadata.lora_adapter_metadata ?? '{}') as Record<string, unknown>;
    } catch {
      /* replaced below */
    }
    for (const [component, byAlpha] of alphas) {
      const common = [...byAlpha].sort((a, b) => b[1].length - a[1].length)[0]![0];
      cfg[`${component}.r`] = ranks.get(component);
      cfg[`${component}.lora_alpha`] = common;
      const pattern: Record<string, number> = {};
      for (const [alpha, list] of byAlpha)
        if (alpha !== common) for (const stem of list) pattern[stem.slice(stem.indexOf('.') + 1)] = alpha;
      if (Object.keys(pattern).length) cfg[`${component}.alpha_pattern`] = pattern;
    }
    metadata.lora_adapter_metadata = JSON.stringify(cfg);
  }
  return { tensors, metadata };
}
