/**
 * Schedulers. vidprior steps with DDIM (the method's 50 DDIM steps); a model folder whose scheduler config names
 * another class (SD 1.5 ships PNDMScheduler) gives DDIM its noise schedule, as `DDIMScheduler.from_config` does.
 */
import { DdimScheduler } from './ddim.js';
import { loadSchedulerConfig, type LoadedSchedulerConfig } from './config.js';

export { DdimScheduler, type DdimStepOptions, type DdimStepResult } from './ddim.js';
export { roundHalfEven } from '../numeric.js';
export { img2imgTimesteps, type Img2ImgTimesteps } from './img2img.js';
export {
  DDIM_DEFAULTS,
  SD1_SCHEDULER,
  ddimConfigFrom,
  loadSchedulerConfig,
  type DdimConfig,
  type LoadedSchedulerConfig,
  type PredictionType,
  type TimestepSpacing,
} from './config.js';
export { makeBetas, linspaceF32, cumprodF32, rescaleZeroTerminalSnr, cosineBetas } from './betas.js';

/** A DDIM scheduler for a diffusers model folder, with the notes to show the user (foreign class, fix-ups). */
export async function loadScheduler(
  modelDir: string,
  options: { sdPipelineFixups?: boolean } = {},
): Promise<{ scheduler: DdimScheduler } & LoadedSchedulerConfig> {
  const loaded = await loadSchedulerConfig(modelDir, options);
  return { scheduler: new DdimScheduler(loaded.config), ...loaded };
}
