/**
 * Test support: diffusers' img2img / txt2img loop written out plainly with a model's sessions and the DDIM
 * scheduler, to check the pipeline's orchestration against.
 */
import type { StableDiffusionModel } from '../../src/models/types.js';
import { DdimScheduler } from '../../src/schedulers/ddim.js';
import { img2imgTimesteps } from '../../src/schedulers/img2img.js';
import { type Tensor, asFloat32, float32, int64 } from '../../src/tensor.js';

/**
 * diffusers' StableDiffusionImg2ImgPipeline written out with the sessions and the scheduler: the
 * unconditional and conditional UNet passes run separately here (batch 1 each), so a wrong batch order in the
 * pipeline would show.
 */
export async function diffusersLoop(
  m: StableDiffusionModel,
  frame: Tensor<'float32'> | null,
  o: { prompt: string; negative: string; strength: number; steps: number; guidance: number; noise: Float32Array },
): Promise<Float32Array> {
  const { io, facts } = m;
  const embed = async (text: string): Promise<Tensor> => {
    const ids = m.tokenizer.encode(text).ids;
    const out = await m.textEncoder.run(
      {
        [io.textIds]:
          facts.textIdsType === 'int32' ? { type: 'int32', dims: [1, 77], data: ids } : int64([1, 77], Array.from(ids)),
      },
      [io.textHidden],
    );
    return out[io.textHidden] as Tensor;
  };
  const cond = await embed(o.prompt);
  const uncond = await embed(o.negative);
  const sched = new DdimScheduler(m.schedulerConfig);
  sched.setTimesteps(o.steps);
  let timesteps: readonly number[] = sched.timesteps;
  let latents: Float32Array;
  const s = Math.fround(facts.scalingFactor);
  if (frame) {
    const sliced = img2imgTimesteps(sched.timesteps, o.steps, o.strength);
    timesteps = sliced.timesteps;
    const enc = await m.vaeEncoder.run({ [io.vaeEncoderIn]: float32([1, ...frame.dims], frame.data) }, [
      io.vaeEncoderOut,
    ]);
    const mean = asFloat32(enc[io.vaeEncoderOut] as Tensor).data.map((v) => s * v);
    latents = sched.addNoise(mean, o.noise, sliced.latentTimestep);
  } else {
    latents = o.noise.slice();
  }
  const dims = [
    1,
    facts.latentChannels,
    Math.sqrt(latents.length / facts.latentChannels),
    Math.sqrt(latents.length / facts.latentChannels),
  ];
  for (const t of timesteps) {
    const run = async (text: Tensor): Promise<Float32Array> =>
      asFloat32(
        (
          await m.unet.run(
            {
              [io.unetSample]: float32(dims, latents),
              [io.unetTimestep]: int64([1], [t]),
              [io.unetText]: text,
            },
            [io.unetOut],
          )
        )[io.unetOut] as Tensor,
      ).data;
    let eps: Float32Array;
    if (o.guidance > 1) {
      const u = await run(uncond);
      const c = await run(cond);
      const g = Math.fround(o.guidance);
      eps = u.map((uv, i) => uv + Math.fround(g * Math.fround(c[i]! - uv)));
    } else {
      eps = await run(cond);
    }
    latents = sched.step(eps, t, latents).prevSample;
  }
  const dec = await m.vaeDecoder.run(
    {
      [io.vaeDecoderIn]: float32(
        dims,
        latents.map((v) => v / s),
      ),
    },
    [io.vaeDecoderOut],
  );
  return asFloat32(dec[io.vaeDecoderOut] as Tensor).data.map((v) => Math.min(1, Math.max(-1, v)));
}
