/**
 * Prompt → text embeddings, as diffusers' `encode_prompt` does it: the prompt (and, with classifier-free
 * guidance, the negative prompt, '' when absent) padded to 77 ids and run through the text encoder one at a
 * time; the UNet's encoder_hidden_states is `last_hidden_state`. With guidance the unconditional embedding
 * comes FIRST in the batch, as in diffusers (`torch.cat([negative, positive])`).
 */
import { VidpriorError } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { idsTensor } from '../models/loader.js';
import { type Tensor, asFloat32, castFloat, tensor } from '../tensor.js';

export interface PromptEmbeddings {
  /** [1, L, W] float32 embedding of the prompt. */
  cond: Tensor<'float32'>;
  /** [1, L, W] float32 embedding of the negative prompt ('' when none); null without guidance. */
  uncond: Tensor<'float32'> | null;
  /** True when the prompt was longer than the text encoder takes and was cut. */
  truncated: boolean;
  /** The part of the prompt that was cut ('' when none). */
  removedText: string;
}

/** Runs the text encoder on one prompt and returns its last_hidden_state as float32 [1, L, W]. */
export async function encodeText(
  model: StableDiffusionModel,
  prompt: string,
): Promise<{ hidden: Tensor<'float32'>; truncated: boolean; removedText: string }> {
  const { facts, io } = model;
  const encoded = model.tokenizer.encode(prompt);
  const feeds: Record<string, Tensor> = { [io.textIds]: idsTensor(facts.textIdsType, encoded.ids) };
  // diffusers passes no mask for SD 1.x (use_attention_mask is false): an export that takes one gets all ones.
  if (io.textMask) feeds[io.textMask] = idsTensor(facts.textIdsType, new Int32Array(encoded.ids.length).fill(1));
  const out = await model.textEncoder.run(feeds, [io.textHidden]);
  const hidden = out[io.textHidden];
  if (!hidden || isGpuTensor(hidden)) {
    throw new VidpriorError(
      'E_INTERNAL',
      'the text encoder session must return host outputs (do not keep them on the GPU)',
    );
  }
  return { hidden: asFloat32(hidden), truncated: encoded.truncated, removedText: encoded.removedText };
}

/** Embeds the prompt, and the negative prompt when `guidance` is on. */
export async function encodePrompts(
  model: StableDiffusionModel,
  prompt: string,
  negativePrompt: string,
  guidance: boolean,
): Promise<PromptEmbeddings> {
  const cond = await encodeText(model, prompt);
  const uncond = guidance ? (await encodeText(model, negativePrompt)).hidden : null;
  return { cond: cond.hidden, uncond, truncated: cond.truncated, removedText: cond.removedText };
}

/**
 * The UNet's encoder_hidden_states for `frames` frames: [uncond × frames, cond × frames] with guidance (the
 * order of diffusers' `cat([latents] * 2)` batch), else cond × frames, cast to the UNet's float type.
 */
export function batchEmbeddings(e: PromptEmbeddings, frames: number, type: 'float32' | 'float16'): Tensor {
  const [, len, width] = e.cond.dims as [number, number, number];
  const one = len * width;
  const parts = e.uncond ? [e.uncond, e.cond] : [e.cond];
  const data = new Float32Array(parts.length * frames * one);
  let offset = 0;
  for (const p of parts) {
    for (let f = 0; f < frames; f++, offset += one) data.set(p.data, offset);
  }
  return castFloat(tensor('float32', [parts.length * frames, len, width], data), type);
}
