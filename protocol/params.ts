/**
 * Job parameters, per job kind. The same maps travel in a `submit` message, sit in a watched folder's
 * `job.json` and are stored in a job's `spec.json`. Unknown parameter names are rejected (a misspelt
 * `strenght` must not be ignored), absent ones take the defaults of the method (README.md, "The method, step by step").
 */
import { VidpriorError } from '../src/errors.js';
import { type Infer, type Schema, array, bool, int, num, object, oneOf, optional, str, withDefault } from './schema.js';

export const JOB_KINDS = ['stylize', 'edit-keyframe', 'finetune', 'run', 'deflicker', 'farm'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

const prompt = () => str({ max: 4000 });
const seed = () => withDefault(int({ min: 0, max: 2 ** 32 - 1 }), 0);
const steps = () => withDefault(int({ min: 1, max: 1000 }), 50);
const guidance = () => withDefault(num({ min: 0, max: 100 }), 7.5);
const strength = (fallback: number) => withDefault(num({ min: 0, max: 1, minExclusive: true }), fallback);
/** Adapter (LoRA) names: what `list_models` returns; letters, digits, `-`, `_`, `.`. */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const adapterName = (): Schema<string> => {
  const base = str({ min: 1, max: 128 });
  return {
    ...base,
    expected: 'an adapter name (letters, digits, ".", "_", "-")',
    parse(v, path) {
      const s = base.parse(v, path);
      if (!ADAPTER_NAME.test(s) || s.includes('..')) {
        throw new VidpriorError(
          'E_BAD_REQUEST',
          `${path} must be an adapter name of letters, digits, ".", "_" and "-", got ${JSON.stringify(s)}`,
          { field: path },
        );
      }
      return s;
    },
  };
};

/** Model names: what `list_models` returns (a path, a Hugging Face repo id, or embedded-default). */
const modelName = (): Schema<string> => str({ min: 1, max: 4096 });
/**
 * A style LoRA merged into the model for a job (kohya/A1111 or diffusers/peft .safetensors): by name, a file of
 * the daemon's adapters folder; or by path, for clients on the same machine, inside the allowed folders.
 */
const styleLora = () => {
  const base = object(
    {
      name: optional(adapterName()),
      path: optional(str({ min: 1, max: 4096 })),
      weight: withDefault(num({ min: -10, max: 10 }), 1),
    },
    { strict: true },
  );
  return {
    ...base,
    expected: 'a LoRA {name or path, weight}',
    parse(v: unknown, path: string) {
      const lora = base.parse(v, path);
      if ((lora.name === undefined) === (lora.path === undefined)) {
        throw new VidpriorError('E_BAD_REQUEST', `${path} must have exactly one of "name" and "path"`, { field: path });
      }
      return lora;
    },
  };
};
/** Style LoRAs, applied in order with their weights (at most 8). */
const loras = () => optional(array(styleLora(), { max: 8 }));
export type StyleLoraParam = { name?: string; path?: string; weight: number };

/** img2img over every frame with the same noise: step 4 of the method. */
export const StylizeParams = object(
  {
    prompt: prompt(),
    negative_prompt: withDefault(prompt(), ''),
    strength: strength(0.45),
    steps: steps(),
    guidance: guidance(),
    seed: seed(),
    /** Frames per UNet batch (results do not depend on it). */
    batch: withDefault(int({ min: 1, max: 64 }), 1),
    /** A fine-tuned adapter by name (see `list_models`); absent = the base model. */
    adapter: optional(adapterName()),
    /** A model by the name `list_models` gives it; absent = the daemon's default model. */
    model: optional(modelName()),
    loras: loras(),
  },
  { strict: true },
);

/** Keyframe candidates: img2img of one frame at high strength with seeds seed, seed+1, …: step 1. */
export const EditKeyframeParams = object(
  {
    prompt: prompt(),
    negative_prompt: withDefault(prompt(), ''),
    strength: strength(0.75),
    steps: steps(),
    guidance: guidance(),
    seed: seed(),
    /** How many candidates (one per seed). */
    candidates: withDefault(int({ min: 1, max: 16 }), 4),
    /** Which of the submitted frames to edit (index into `frames`). */
    frame: withDefault(int({ min: 0, max: 1_000_000 }), 0),
    adapter: optional(adapterName()),
    model: optional(modelName()),
    loras: loras(),
  },
  { strict: true },
);

const trainingFields = {
  prompt: prompt(),
  /** Frames sampled evenly over the clip for the unconditional samples. */
  train_frames: withDefault(int({ min: 1, max: 10_000 }), 30),
  iters: withDefault(int({ min: 1, max: 1_000_000 }), 1000),
  /** Default 1e-4 for LoRA, 1e-5 with `full` (the method's): resolved by the job. */
  lr: optional(num({ min: 0, max: 1, minExclusive: true })),
  rank: withDefault(int({ min: 1, max: 256 }), 4),
  /** Fine-tune every UNet weight instead of a LoRA. */
  full: withDefault(bool(), false),
  max_timestep: withDefault(int({ min: 1, max: 1000 }), 500),
  checkpoint_every: withDefault(int({ min: 1, max: 1_000_000 }), 100),
  seed: seed(),
  /** Name under which the adapter is kept (default: the job id). */
  adapter_name: optional(adapterName()),
  /** The base model, by the name `list_models` gives it; absent = the daemon's default model. */
  model: optional(modelName()),
  /** Style LoRAs merged first: the adapter trains on top of them (and a run stylizes with them). */
  loras: loras(),
};

/** Per-video LoRA fine-tuning on the clip and its edited keyframes: steps 2–3. */
export const FinetuneParams = object(trainingFields, { strict: true });

/** The whole method: fine-tune, then stylize every frame with the new adapter. */
export const RunParams = object(
  {
    ...trainingFields,
    negative_prompt: withDefault(prompt(), ''),
    strength: strength(0.45),
    steps: steps(),
    guidance: guidance(),
    batch: withDefault(int({ min: 1, max: 64 }), 1),
  },
  { strict: true },
);

/**
 * Deep Video Prior post-pass on a processed video: `frames` are the original clip, `edits` the processed
 * version of every frame; outputs are the deflickered frames, named like the inputs. Defaults: src/deflicker.
 */
export const DeflickerParams = object(
  {
    /** Short side the network trains at (the result is made at full size); 0 = full size. */
    working_size: withDefault(int({ min: 0, max: 16384 }), 0),
    width: withDefault(int({ min: 4, max: 128 }), 16),
    scales: withDefault(int({ min: 2, max: 6 }), 5),
    epochs: withDefault(int({ min: 1, max: 10_000 }), 25),
    lr: withDefault(num({ min: 0, max: 1, minExclusive: true }), 5e-4),
    batch: withDefault(int({ min: 1, max: 64 }), 1),
    apply_batch: withDefault(int({ min: 1, max: 64 }), 1),
    irt: withDefault(bool(), false),
    irt_init_epochs: withDefault(int({ min: 0, max: 10_000 }), 5),
    gradient_weight: withDefault(num({ min: 0, max: 100 }), 1),
    early_stop: withDefault(bool(), true),
    seed: seed(),
  },
  { strict: true },
);

/**
 * The whole method on a Slurm cluster (daemons started with `serve --slurm`): fine-tune (unless `adapter` names a
 * ready one), a job array of stylize chunks of `chunk` frames, assembly. The parameters of `run` (no `loras`, no
 * `batch`, no `adapter_name`: the adapter stays in the farm folder), plus `adapter` and `chunk`.
 */
export const FarmParams = object(
  {
    prompt: prompt(),
    train_frames: trainingFields.train_frames,
    iters: trainingFields.iters,
    lr: trainingFields.lr,
    rank: trainingFields.rank,
    full: trainingFields.full,
    max_timestep: trainingFields.max_timestep,
    checkpoint_every: trainingFields.checkpoint_every,
    seed: seed(),
    model: optional(modelName()),
    negative_prompt: withDefault(prompt(), ''),
    strength: strength(0.45),
    steps: steps(),
    guidance: guidance(),
    /** A ready adapter by name (see `list_models`): no fine-tune stage. */
    adapter: optional(adapterName()),
    /** Frames per stylize task (one array element). */
    chunk: withDefault(int({ min: 1, max: 100_000 }), 25),
  },
  { strict: true },
);

export type StylizeParams = Infer<typeof StylizeParams>;
export type FarmParams = Infer<typeof FarmParams>;
export type DeflickerParams = Infer<typeof DeflickerParams>;
export type EditKeyframeParams = Infer<typeof EditKeyframeParams>;
export type FinetuneParams = Infer<typeof FinetuneParams>;
export type RunParams = Infer<typeof RunParams>;

export interface ParamsByKind {
  stylize: StylizeParams;
  'edit-keyframe': EditKeyframeParams;
  finetune: FinetuneParams;
  run: RunParams;
  deflicker: DeflickerParams;
  farm: FarmParams;
}

const SCHEMAS: { [K in JobKind]: Schema<ParamsByKind[K]> } = {
  stylize: StylizeParams,
  'edit-keyframe': EditKeyframeParams,
  finetune: FinetuneParams,
  run: RunParams,
  deflicker: DeflickerParams,
  farm: FarmParams,
};

export const JobKindSchema = oneOf(JOB_KINDS);

/** Checks the parameters of a job of `kind`, filling in defaults. `path` names the field in errors. */
export function parseParams<K extends JobKind>(kind: K, value: unknown, path = 'params'): ParamsByKind[K] {
  return SCHEMAS[kind].parse(value ?? {}, path);
}

/** The parameter table of a kind (for `--help` and the spec): name → expected. */
export function describeParams(kind: JobKind): Record<string, string> {
  const shape = (SCHEMAS[kind] as unknown as { shape: Record<string, Schema<unknown, boolean>> }).shape;
  return Object.fromEntries(
    Object.entries(shape).map(([k, s]) => [k, s.expected + (s.isOptional ? '' : ' (required)')]),
  );
}
