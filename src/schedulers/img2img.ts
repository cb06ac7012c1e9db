/**
 * img2img's timestep slicing, as diffusers' StableDiffusionImg2ImgPipeline.get_timesteps does it: with strength
 * s and n inference steps, only the last int(n·s) timesteps run, starting from the input noised to the first
 * of them.
 */
import { VidpriorError } from '../errors.js';

export interface Img2ImgTimesteps {
  /** The timesteps to run, high noise first: timesteps[t_start·order:]. */
  timesteps: number[];
  /** How many denoising steps will actually run (n − t_start). */
  numSteps: number;
  /** Index of the first kept timestep in the full schedule (t_start·order). */
  startIndex: number;
  /** The timestep the input latents are noised to (timesteps[0]). */
  latentTimestep: number;
}

/**
 * init_timestep = min(int(n·strength), n); t_start = max(n − init_timestep, 0); timesteps[t_start·order:].
 * `schedule` is the scheduler's timesteps after setTimesteps(n). A strength so small that no step is left is an
 * error naming the strength and the step count (the reference fails there too).
 */
export function img2imgTimesteps(
  schedule: readonly number[],
  numInferenceSteps: number,
  strength: number,
  order = 1,
): Img2ImgTimesteps {
  if (!(strength > 0 && strength <= 1)) {
    throw new VidpriorError('E_BAD_REQUEST', `strength must be in (0, 1], got ${JSON.stringify(strength)}`, {
      strength,
    });
  }
  const n = numInferenceSteps;
  const initTimestep = Math.min(Math.trunc(n * strength), n);
  const tStart = Math.max(n - initTimestep, 0);
  const timesteps = schedule.slice(tStart * order);
  if (timesteps.length === 0 || n - tStart < 1) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `strength ${strength} with ${n} steps leaves no denoising step (int(${n} × ${strength}) = ${initTimestep}): raise the strength or the steps`,
      { strength, steps: n },
    );
  }
  return { timesteps, numSteps: n - tStart, startIndex: tStart * order, latentTimestep: timesteps[0]! };
}
