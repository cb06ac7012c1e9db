/**
 * Scheduler configuration: the keys of diffusers' scheduler_config.json that DDIMScheduler takes, their
 * defaults (DDIMScheduler.__init__'s), validation with errors that name the bad key, and loading from a model
 * folder the way a diffusers user does `DDIMScheduler.from_config(pipe.scheduler.config)`: keys DDIM knows are
 * taken, other keys are ignored, and a config written for another scheduler class still gives its betas.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VidpriorError } from '../errors.js';

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

export interface DdimConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  trained_betas: number[] | null;
  clip_sample: boolean;
  clip_sample_range: number;
  set_alpha_to_one: boolean;
  steps_offset: number;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  rescale_betas_zero_snr: boolean;
}

/** DDIMScheduler.__init__ defaults (diffusers). */
export const DDIM_DEFAULTS: Readonly<DdimConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  clip_sample: true,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  rescale_betas_zero_snr: false,
});

/** The scheduler every SD 1.x checkpoint was trained with (used when a model folder has no scheduler config). */
export const SD1_SCHEDULER: Readonly<Partial<DdimConfig>> = Object.freeze({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  prediction_type: 'epsilon',
});

const ENUMS: Partial<Record<keyof DdimConfig, readonly string[]>> = {
  beta_schedule: ['linear', 'scaled_linear', 'squaredcos_cap_v2'],
  prediction_type: ['epsilon', 'v_prediction', 'sample'],
  timestep_spacing: ['leading', 'trailing', 'linspace'],
};

function bad(source: string, key: string, value: unknown, expected: string): VidpriorError {
  return new VidpriorError('E_MODEL_INPUT', `${source}: ${key} must be ${expected}, got ${JSON.stringify(value)}`, {
    file: source,
    [key]: value,
  });
}

/**
 * A full DDIM config from a (possibly partial, possibly foreign) JSON object. Unknown keys are returned in
 * `ignored` (diffusers logs them and ignores them too).
 */
export function ddimConfigFrom(
  json: Record<string, unknown>,
  source = 'scheduler config',
): { config: DdimConfig; ignored: string[] } {
  const config: DdimConfig = { ...DDIM_DEFAULTS };
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key.startsWith('_')) continue; // _class_name, _diffusers_version
    if (!(key in DDIM_DEFAULTS)) {
      ignored.push(key);
      continue;
    }
    const k = key as keyof DdimConfig;
    if (value === undefined || (value === null && k !== 'trained_betas')) continue; // null means "default" in diffusers configs
    const enumValues = ENUMS[k];
    if (enumValues) {
      if (typeof value !== 'string' || !enumValues.includes(value))
        throw bad(source, key, value, `one of ${enumValues.join(', ')}`);
    } else if (k === 'trained_betas') {
      if (value !== null && (!Array.isArray(value) || value.some((v) => typeof v !== 'number' || !(v > 0 && v < 1)))) {
        throw bad(source, key, value, 'null or an array of numbers in (0, 1)');
      }
    } else if (typeof DDIM_DEFAULTS[k] === 'boolean') {
      if (typeof value !== 'boolean') throw bad(source, key, value, 'true or false');
    } else if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw bad(source, key, value, 'a number');
    }
    (config as unknown as Record<string, unknown>)[k] = value;
  }
  if (!Number.isInteger(config.num_train_timesteps) || config.num_train_timesteps < 2) {
    throw bad(source, 'num_train_timesteps', config.num_train_timesteps, 'an integer ≥ 2');
  }
  if (!Number.isInteger(config.steps_offset) || config.steps_offset < 0)
    throw bad(source, 'steps_offset', config.steps_offset, 'an integer ≥ 0');
  if (!(config.beta_start > 0 && config.beta_end < 1 && config.beta_start <= config.beta_end)) {
    throw bad(
      source,
      'beta_start/beta_end',
      [config.beta_start, config.beta_end],
      'numbers with 0 < beta_start ≤ beta_end < 1',
    );
  }
  if (config.trained_betas && config.trained_betas.length !== config.num_train_timesteps) {
    throw bad(
      source,
      'trained_betas',
      `${config.trained_betas.length} values`,
      `num_train_timesteps (${config.num_train_timesteps}) values`,
    );
  }
  return { config, ignored };
}

export interface LoadedSchedulerConfig {
  config: DdimConfig;
  /** The scheduler class the file names (e.g. PNDMScheduler); vidprior always steps with DDIM. */
  className: string | null;
  /** Human-readable notes: a foreign class, adjusted keys, a missing file. */
  notes: string[];
  /** The file read, or null when none was found. */
  file: string | null;
}

/**
 * Reads `<modelDir>/scheduler/scheduler_config.json` as diffusers' Stable Diffusion pipelines use it.
 * `sdPipelineFixups` (default true) applies what StableDiffusionPipeline/Img2ImgPipeline.__init__ do to an
 * outdated config: steps_offset ≠ 1 becomes 1 and clip_sample true becomes false, each with a note.
 * Without the file, SD 1.x's training schedule is used, with a note.
 */
export async function loadSchedulerConfig(
  modelDir: string,
  options: { sdPipelineFixups?: boolean } = {},
): Promise<LoadedSchedulerConfig> {
  const file = join(modelDir, 'scheduler', 'scheduler_config.json');
  const notes: string[] = [];
  let json: Record<string, unknown>;
  let found: string | null = file;
  if (existsSync(file)) {
    try {
      json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${file} is not valid JSON: ${(err as Error).message}`,
        { file },
        { cause: err },
      );
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) {
      throw new VidpriorError('E_MODEL_INPUT', `${file} is not a JSON object`, { file });
    }
  } else {
    found = null;
    json = { ...SD1_SCHEDULER };
    notes.push(`no ${file}: using the SD 1.x training schedule (scaled_linear 0.00085..0.012, 1000 steps)`);
  }
  const className = typeof json._class_name === 'string' ? json._class_name : null;
  const { config, ignored } = ddimConfigFrom(json, found ?? 'SD 1.x default scheduler');
  if (className && className !== 'DDIMScheduler') {
    notes.push(
      `${className} config: stepping with DDIM on the same noise schedule` +
        (ignored.length ? ` (ignoring ${ignored.join(', ')})` : ''),
    );
  }
  if (options.sdPipelineFixups ?? true) {
    if (config.steps_offset !== 1) {
      notes.push(
        `scheduler steps_offset is ${config.steps_offset}: using 1, as diffusers' Stable Diffusion pipelines do`,
      );
      config.steps_offset = 1;
    }
    if (config.clip_sample) {
      notes.push("scheduler clip_sample is true: using false, as diffusers' Stable Diffusion pipelines do");
      config.clip_sample = false;
    }
  }
  return { config, className, notes, file: found };
}
