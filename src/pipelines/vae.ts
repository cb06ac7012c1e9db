/**
 * Images ⇄ latents, as diffusers' img2img does it in float32. Images are in the VAE's range [-1, 1], the
 * convention of src/io/frames.ts (readFrame gives u8/255·2−1 as diffusers' preprocess does; writeFramePng
 * applies (x/2 + 0.5).clamp(0,1)·255 as diffusers' postprocess does):
 *   encode: VAE encoder → posterior mean (the first C channels of `latent_parameters`, or `latent_sample` as
 *           is) → × scaling_factor;
 *   decode: latents / scaling_factor → VAE decoder → clamped to [-1, 1] (the same bytes after postprocess).
 * The ONNX encoder exports have no sampling, so the mean is used (what diffusers' ONNX pipelines do).
 */
import { VidpriorError } from '../errors.js';
import type { StableDiffusionModel } from '../models/types.js';
import { isGpuTensor } from '../runtime/types.js';
import { type Tensor, asFloat32, castFloat, float32 } from '../tensor.js';

/** Encodes a batch of images [N,3,H,W] (float32 in [-1,1]) into scaled latents [N,C,H/f,W/f] (float32). */
export async function encodeImages(model: StableDiffusionModel, images: Tensor<'float32'>): Promise<Tensor<'float32'>> {
  const { facts, io } = model;
  const [n, c, h, w] = images.dims as [number, number, number, number];
  if (images.dims.length !== 4 || c !== 3) {
    throw new VidpriorError('E_BAD_INPUT', `images must be [N,3,H,W], got [${images.dims.join(',')}]`, {
      dims: images.dims,
    });
  }
  if (h % facts.vaeScaleFactor !== 0 || w % facts.vaeScaleFactor !== 0) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `image size ${w}×${h} is not a multiple of the VAE scale factor ${facts.vaeScaleFactor}`,
      { width: w, height: h },
    );
  }
  const out = await model.vaeEncoder.run({ [io.vaeEncoderIn]: castFloat(images, facts.vaeEncoderType) }, [
    io.vaeEncoderOut,
  ]);
  const enc = out[io.vaeEncoderOut];
  if (!enc || isGpuTensor(enc))
    throw new VidpriorError('E_INTERNAL', 'the VAE encoder session must return host outputs');
  const moments = asFloat32(enc);
  const C = facts.latentChannels;
  const oc = moments.dims[1]!;
  const lh = moments.dims[2]!;
  const lw = moments.dims[3]!;
  const plane = lh * lw;
  // The mean is the first C channels of each item (all of them for latent_sample).
  const scale = Math.fround(facts.scalingFactor);
  const lat = new Float32Array(n * C * plane);
  for (let b = 0; b < n; b++) {
    const src = moments.data.subarray(b * oc * plane, b * oc * plane + C * plane);
    const dst = lat.subarray(b * C * plane, (b + 1) * C * plane);
    for (let i = 0; i < src.length; i++) dst[i] = scale * src[i]!;
  }
  return float32([n, C, lh, lw], lat);
}

/** Decodes scaled latents [N,C,h,w] into images [N,3,h·f,w·f], float32 clamped to [-1,1]. */
export async function decodeLatents(
  model: StableDiffusionModel,
  latents: Tensor<'float32'>,
): Promise<Tensor<'float32'>> {
  const { facts, io } = model;
  const scale = Math.fround(facts.scalingFactor);
  const z = new Float32Array(latents.data.length);
  for (let i = 0; i < z.length; i++) z[i] = latents.data[i]! / scale;
  const out = await model.vaeDecoder.run(
    { [io.vaeDecoderIn]: castFloat(float32(latents.dims, z), facts.vaeDecoderType) },
    [io.vaeDecoderOut],
  );
  const dec = out[io.vaeDecoderOut];
  if (!dec || isGpuTensor(dec))
    throw new VidpriorError('E_INTERNAL', 'the VAE decoder session must return host outputs');
  const img = asFloat32(dec);
  const pixels = new Float32Array(img.data.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = img.data[i]!;
    pixels[i] = v < -1 ? -1 : Math.min(v, 1);
  }
  return float32(img.dims, pixels);
}
