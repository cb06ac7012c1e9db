/**
 * `vidprior models list`: the models `--model` can take without a path (recent, Hugging Face cache,
 * converted, built-in). `vidprior models convert <model>`: the conversion `--model` does on first use, now. `vidprior models create-tiny <dir>`: writes a Stable Diffusion 1.x-architecture model folder (diffusers ONNX
 * layout) with seeded random weights, from a preset (tiny, tiny-sd-torch, sd15) or a diffusers-style JSON
 * config. `vidprior models inspect <dir>`: what a model folder holds (components, inputs and outputs, opsets,
 * weights) and the facts the pipelines derive from it (VAE factor, latent channels, text width); for a
 * checkpoint, diffusers folder or hub id, the architecture read from it and where each fact came from.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { VidpriorError } from '../../src/errors.js';
import { loadModel } from '../../src/onnx/external-data.js';
import { summarize } from '../../src/onnx/graph.js';
import { type Model, type ValueInfo, elementCount } from '../../src/onnx/ir.js';
import { openRuntime } from '../../src/runtime/index.js';
import { COMPONENTS, readModelFolder } from '../../src/models/folder.js';
import { loadModelFolder } from '../../src/models/loader.js';
import { PRESETS, type PartialSdConfig } from '../../src/models/builder/index.js';
import { createModelFolder } from '../../src/models/builder/folder.js';
import { availableModels } from '../../src/models/resolve/catalog.js';
import { identifyModel, inspectRecipe } from '../../src/models/resolve/resolve.js';
import { describeConfig } from '../../src/models/checkpoint/architecture.js';
import { MODEL_OPTIONS, modelFolderFor } from './model-session.js';
import { makeReporter, type Reporter } from './output.js';

interface CreateArgs {
  dir: string;
  config: string;
  seed: number;
  opset: number;
  dtype: string;
  'external-data': string;
  'encoder-output': string;
  overwrite: boolean;
  json: boolean;
}

interface InspectArgs {
  dir: string;
  probe: boolean;
  'model-config'?: string;
  variant?: string;
  json: boolean;
}

interface ListArgs {
  json: boolean;
}

interface ConvertArgs {
  model: string;
  'model-config'?: string;
  dtype?: string;
  json: boolean;
}

const convert: CommandModule<object, ConvertArgs> = {
  command: 'convert <model>',
  describe: 'Convert a checkpoint, diffusers folder or cached hub id to ONNX now (what --model does on first use)',
  builder: (yargs) =>
    yargs
      .positional('model', { type: 'string', demandOption: true, describe: 'what --model would take' })
      .option('model-config', MODEL_OPTIONS['model-config'])
      .option('dtype', MODEL_OPTIONS.dtype)
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable progress and result' }) as never,
  handler: async (argv) => {
    const report = makeReporter(argv.json);
    const dir = await modelFolderFor(argv, report);
    report.result({ dir }, `ONNX folder: ${dir}`);
  },
};

const list: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'List the models --model takes by name: recent, in the Hugging Face cache, converted, built-in',
  builder: (yargs) =>
    yargs.option('json', { type: 'boolean', default: false, describe: 'print the list as JSON' }) as never,
  handler: async (argv) => {
    const report = makeReporter(argv.json);
    const models = await availableModels();
    const width = Math.min(70, Math.max(...models.map((m) => m.name.length)));
    report.result(
      { models },
      models.map((m) => `${m.origin.padEnd(9)} ${m.name.padEnd(width)}  ${m.description}`).join('\n'),
    );
  },
};

/** `models inspect` of a checkpoint, diffusers folder or hub id: the architecture and each fact's source. */
async function inspectSource(argv: InspectArgs, report: Reporter): Promise<boolean> {
  const ref = identifyModel(argv.dir);
  if (ref.kind === 'onnx' || ref.kind === 'embedded') return false;
  const recipe = await inspectRecipe(ref, { modelConfig: argv['model-config'], variant: argv.variant });
  if (!recipe) return false;
  try {
    const cfg = recipe.arch.config;
    const bySource = new Map<string, string[]>();
    for (const [k, src] of Object.entries(recipe.arch.sources)) bySource.set(src, [...(bySource.get(src) ?? []), k]);
    const tensors = Object.fromEntries(Object.entries(recipe.weights).map(([p, m]) => [p, m.size]));
    report.result(
      {
        model: ref.display,
        kind: ref.kind,
        path: ref.path,
        config: cfg,
        sources: recipe.arch.sources,
        tokenizer: recipe.tokenizerDir,
        scheduler: recipe.scheduler,
        tensors,
        notes: recipe.notes,
      },
      [
        `${ref.kind} ${ref.display}`,
        `  ${describeConfig(cfg)}`,
        `  heads: UNet ${JSON.stringify(cfg.unet.attention_head_dim)}, CLIP ${cfg.text_encoder.num_attention_heads}; GroupNorm groups: UNet ${cfg.unet.norm_num_groups}, VAE ${cfg.vae.norm_num_groups}; latent scaling ${cfg.vae.scaling_factor}`,
        ...[...bySource].map(([src, keys]) => `  from ${src}: ${keys.join(', ')}`),
        `  tokenizer: ${recipe.tokenizerDir}`,
        `  scheduler: ${recipe.scheduler.source} (${String(recipe.scheduler.config.prediction_type ?? 'epsilon')})`,
        `  tensors used: unet ${tensors.unet}, vae ${tensors.vae}, text encoder ${tensors.text_encoder}`,
        ...recipe.notes.map((n) => `  note: ${n}`),
      ].join('\n'),
    );
    return true;
  } finally {
    await recipe.close();
  }
}

/** A preset name, or a JSON file with text_encoder / unet / vae sections (partial ones take the rest from `base`). */
async function readConfigArg(value: string): Promise<string | PartialSdConfig> {
  if (PRESETS[value]) return value;
  if (!existsSync(value)) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--config must be a preset (${Object.keys(PRESETS).join(', ')}) or a JSON file, got "${value}" (no such file)`,
      { config: value },
    );
  }
  try {
    const parsed: unknown = JSON.parse(await readFile(value, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as PartialSdConfig;
  } catch (err) {
    throw new VidpriorError('E_BAD_REQUEST', `--config ${value} is not a JSON object: ${(err as Error).message}`, {
      config: value,
    });
  }
}

const createTiny: CommandModule<object, CreateArgs> = {
  command: 'create-tiny <dir>',
  describe: 'Write a model folder with seeded random weights (SD 1.x architecture, diffusers ONNX layout)',
  builder: (yargs) =>
    yargs
      .positional('dir', { type: 'string', demandOption: true, describe: 'the folder to create (must not exist)' })
      .option('config', {
        type: 'string',
        default: 'tiny',
        describe: `a preset (${Object.keys(PRESETS).join(', ')}) or a JSON file with diffusers-style text_encoder / unet / vae sections`,
      })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the random weights' })
      .option('opset', {
        type: 'number',
        default: 17,
        describe: 'ONNX opset, 14–21 (below 17: LayerNorm as the TorchScript op chain)',
      })
      .option('dtype', {
        type: 'string',
        choices: ['float32', 'float16'],
        default: 'float32',
        describe: 'weights and inputs/outputs in float32 or float16',
      })
      .option('external-data', {
        type: 'string',
        choices: ['auto', 'yes', 'no'],
        default: 'auto',
        describe: 'weights in model.onnx.data files (auto: for models over 256 MiB)',
      })
      .option('encoder-output', {
        type: 'string',
        choices: ['latent_sample', 'latent_parameters'],
        default: 'latent_sample',
        describe: 'VAE encoder output: the mean, or mean and log-variance',
      })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace the folder if it exists' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable progress and result on stdout' })
      .example(
        '$0 models create-tiny ./tiny-model',
        "the embedded default's architecture (VAE factor 8, about 1.3M parameters)",
      )
      .example(
        '$0 models create-tiny ./sd15-random --config sd15 --dtype float16',
        'an SD 1.5-sized model for GPU benchmarks',
      ) as never,
  handler: async (argv) => {
    const report = makeReporter(argv.json);
    const cfg = await readConfigArg(argv.config);
    const ext = argv['external-data'];
    const created = await createModelFolder(argv.dir, cfg, {
      seed: argv.seed,
      opset: argv.opset,
      dtype: argv.dtype as 'float32' | 'float16',
      externalData: ext === 'yes' ? true : ext === 'no' ? false : 'auto',
      encoderOutput: argv['encoder-output'] as 'latent_sample' | 'latent_parameters',
      overwrite: argv.overwrite,
      onProgress: (e) =>
        report.progress(
          { event: 'component', ...e },
          `wrote ${e.component} (${e.parameters.toLocaleString('en-US')} parameters, ${e.seconds.toFixed(1)} s)`,
        ),
    });
    report.note('The weights are random: this model makes noise-like pictures; it is for tests and benchmarks.');
    const total = Object.values(created.parameters).reduce((a, b) => a + b, 0);
    report.result(
      {
        dir: created.dir,
        parameters: created.parameters,
        bytes: created.bytes,
        vaeScaleFactor: created.vaeScaleFactor,
        seconds: created.seconds,
      },
      [
        `created ${created.dir} in ${created.seconds.toFixed(1)} s`,
        ...COMPONENTS.map(
          (c) =>
            `  ${c.padEnd(13)} ${created.parameters[c].toLocaleString('en-US').padStart(13)} parameters  ${(created.bytes[c] / 2 ** 20).toFixed(1).padStart(8)} MiB`,
        ),
        `  total         ${total.toLocaleString('en-US').padStart(13)} parameters; VAE factor ${created.vaeScaleFactor}`,
      ].join('\n'),
    );
  },
};

function signature(v: ValueInfo): string {
  return `${v.name} ${v.type}[${v.shape ? v.shape.map((d) => d ?? '?').join(', ') : '?'}]`;
}

/**
 * Float weights of a model: its float initializers, plus the copies that TorchScript exports alias with
 * Identity nodes when they deduplicate equal tensors (so a real export counts as many as the module has).
 * A few float constants of the graph (masks, norm scales) are counted too.
 */
function floatWeights(model: Model): number {
  const size = new Map<string, number>();
  for (const t of model.graph.initializers) {
    if (t.type === 'float32' || t.type === 'float16' || t.type === 'bfloat16') size.set(t.name, elementCount(t.dims));
  }
  let n = 0;
  for (const v of size.values()) n += v;
  for (const node of model.graph.nodes)
    if (node.opType === 'Identity' && size.has(node.inputs[0]!)) n += size.get(node.inputs[0]!)!;
  return n;
}

const inspect: CommandModule<object, InspectArgs> = {
  command: 'inspect <dir>',
  describe:
    'Show what a model folder holds: components, inputs/outputs, opsets, weights, VAE factor, latent channels, text width',
  builder: (yargs) =>
    yargs
      .positional('dir', {
        type: 'string',
        demandOption: true,
        describe: 'an SD 1.x ONNX folder, a checkpoint, a diffusers folder, or a repo id in the Hugging Face cache',
      })
      .option('model-config', { type: 'string', describe: 'a diffusers folder whose configs complete a checkpoint' })
      .option('variant', { type: 'string', describe: 'diffusers weight variant (fp16)' })
      .option('probe', {
        type: 'boolean',
        default: true,
        describe:
          'load the models on the CPU to derive VAE factor, latent channels and text width (--no-probe: read the files only)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' }) as never,
  handler: async (argv) => {
    const report = makeReporter(argv.json);
    if (await inspectSource(argv, report)) return;
    const dir = resolve(argv.dir);
    const folder = await readModelFolder(dir);
    const components: Record<string, unknown> = {};
    const lines: string[] = [`model folder ${dir}`];
    for (const c of COMPONENTS) {
      // The .onnx only: external weights are counted from their references, never read.
      const model = await loadModel(folder.onnx[c], { loadExternal: false });
      const s = summarize(model);
      const weights = floatWeights(model);
      components[c] = {
        inputs: s.inputs,
        outputs: s.outputs,
        opsets: s.opsets,
        irVersion: s.irVersion,
        producer: s.producer,
        nodes: s.nodeCount,
        floatWeights: weights,
        weightBytes: s.parameters.bytes,
        externalBytes: s.externalBytes,
      };
      lines.push(
        `${c}: opset ${s.opsets['ai.onnx'] ?? '?'} · ${s.producer || 'unknown producer'} · ${s.nodeCount} nodes · ${weights.toLocaleString('en-US')} float weights (${(s.parameters.bytes / 2 ** 20).toFixed(1)} MiB${s.externalBytes ? ', external data' : ''})`,
        `  in:  ${s.inputs.map(signature).join('; ')}`,
        `  out: ${s.outputs.map(signature).join('; ')}`,
      );
    }
    lines.push(
      `scheduler config: ${folder.schedulerConfigSource}; latent scaling ${folder.scalingFactor} (${folder.scalingFactorSource})`,
    );
    const builtPath = join(dir, 'vidprior-model.json');
    let built: unknown = null;
    if (existsSync(builtPath)) {
      built = JSON.parse(await readFile(builtPath, 'utf8'));
      const b = built as { seed?: number; builder_version?: number; converted_from?: string; dtype?: string };
      lines.push(
        b.converted_from
          ? `converted by vidprior from ${b.converted_from} (${b.dtype}; builder version ${b.builder_version})`
          : `built by vidprior's model builder (version ${b.builder_version}, seed ${b.seed}): random weights`,
      );
    }
    let facts: unknown = null;
    if (argv.probe) {
      const runtime = await openRuntime({ ep: 'cpu', cpuThreads: config().cpuThreads });
      try {
        const model = await loadModelFolder(dir, runtime);
        facts = model.facts;
        const f = model.facts;
        lines.push(
          `VAE factor ${f.vaeScaleFactor} · latent channels ${f.latentChannels} · text ${f.textLength}×${f.textWidth} · encoder output ${f.encoderOutput} · UNet ${f.unetType}, timestep ${f.timestepType}`,
        );
        await model.release();
      } finally {
        await runtime.close();
      }
    }
    report.result(
      { dir, components, scheduler: folder.schedulerConfig, scalingFactor: folder.scalingFactor, facts, built },
      lines.join('\n'),
    );
  },
};

export const modelsCommand: CommandModule<object, object> = {
  command: 'models <command>',
  describe: 'List, inspect and create models',
  builder: (yargs) =>
    yargs
      .command(createTiny)
      .command(inspect)
      .command(list)
      .command(convert)
      .demandCommand(1, 'Give a models command: list, inspect, convert or create-tiny.') as never,
  handler: () => {},
};
