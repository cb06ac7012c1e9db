/**
 * Which files of a hub repo a Stable Diffusion 1.x pipeline needs — never the whole repo (model repos carry
 * .ckpt and .bin copies, EMA checkpoints, safety checkers and other variants, often ten times the model):
 *
 *   diffusers layout: model_index.json, scheduler/*.json, tokenizer/ (vocab, merges, configs), and for unet/,
 *     vae/, text_encoder/ their config.json and safetensors weights — the `--variant`'s (`….fp16.safetensors`)
 *     when asked and present, else the plain ones; sharded weights with their index;
 *   ONNX export (unet/model.onnx, …): model_index.json, scheduler/, tokenizer/, and everything in
 *     text_encoder/, unet/, vae_encoder/, vae_decoder/ but PyTorch weights (external data has varied names).
 */
import { VidpriorError } from '../../errors.js';

export interface RepoFile {
  path: string;
  size: number;
  /** git blob id. */
  oid?: string;
  lfs?: { oid: string; size: number };
}

export type PullFormat = 'auto' | 'diffusers' | 'onnx';

export interface Selection {
  format: 'diffusers' | 'onnx';
  files: RepoFile[];
  /** For the user: variant fallbacks and the like. */
  notes: string[];
}

const ONNX_COMPONENTS = ['text_encoder', 'unet', 'vae_encoder', 'vae_decoder'];
const TORCH_COMPONENTS = ['unet', 'vae', 'text_encoder'];
const TOKENIZER_FILES =
  /^tokenizer\/(vocab\.json|merges\.txt|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json)$/;
const PICKLES = /\.(bin|ckpt|pt|pth|pkl|msgpack|h5)$/;

/** `name(-00001-of-00002)?(.variant)?.safetensors` or its `.safetensors.index(.variant)?.json`. */
function weightFile(file: string): { variant: string | null } | null {
  let m = /^(?:diffusion_pytorch_model|model)(?:-\d{5}-of-\d{5})?(?:\.([A-Za-z0-9_]+))?\.safetensors$/.exec(file);
  if (m) return { variant: m[1] ?? null };
  m = /^(?:diffusion_pytorch_model|model)\.safetensors\.index(?:\.([A-Za-z0-9_]+))?\.json$/.exec(file);
  return m ? { variant: m[1] ?? null } : null;
}

function has(paths: Set<string>, path: string): boolean {
  return paths.has(path);
}

export function selectPipelineFiles(
  repo: string,
  all: RepoFile[],
  opts: { variant?: string; format?: PullFormat },
): Selection {
  const paths = new Set(all.map((f) => f.path));
  const isOnnx = ONNX_COMPONENTS.every((c) => has(paths, `${c}/model.onnx`));
  const isDiffusers = has(paths, 'model_index.json') && TORCH_COMPONENTS.every((c) => has(paths, `${c}/config.json`));
  const format = opts.format ?? 'auto';
  const notes: string[] = [];
  const common = all.filter(
    (f) => f.path === 'model_index.json' || /^scheduler\/[^/]+\.json$/.test(f.path) || TOKENIZER_FILES.test(f.path),
  );
  if ((format === 'auto' && isOnnx) || format === 'onnx') {
    if (!isOnnx) {
      const missing = ONNX_COMPONENTS.filter((c) => !has(paths, `${c}/model.onnx`)).map((c) => `${c}/model.onnx`);
      throw new VidpriorError('E_MODEL_MISSING', `${repo} is not an ONNX export: it has no ${missing.join(', ')}`, {
        repo,
      });
    }
    if (opts.variant)
      notes.push(`--variant ${opts.variant} does not apply to an ONNX export: taking its files as they are`);
    const files = all.filter(
      (f) =>
        ONNX_COMPONENTS.some((c) => f.path.startsWith(`${c}/`) && !f.path.slice(c.length + 1).includes('/')) &&
        !PICKLES.test(f.path) &&
        !f.path.endsWith('.safetensors'),
    );
    return { format: 'onnx', files: [...common, ...files], notes };
  }
  if (!isDiffusers) {
    const what = has(paths, 'model_index.json')
      ? `its model_index.json names no ${TORCH_COMPONENTS.filter((c) => !has(paths, `${c}/config.json`))
          .map((c) => `${c}/config.json`)
          .join(', ')}`
      : 'it has no model_index.json (a single-file checkpoint repo? download the .safetensors and give its path as --model)';
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `${repo} is not a Stable Diffusion pipeline in diffusers layout: ${what}`,
      {
        repo,
      },
    );
  }
  const files = [...common];
  for (const c of TORCH_COMPONENTS) {
    files.push(all.find((f) => f.path === `${c}/config.json`)!);
    const weights = all.filter((f) => f.path.startsWith(`${c}/`) && weightFile(f.path.slice(c.length + 1)));
    const variantOf = (f: RepoFile) => weightFile(f.path.slice(c.length + 1))!.variant;
    const wanted = opts.variant ? weights.filter((f) => variantOf(f) === opts.variant) : [];
    const plain = weights.filter((f) => variantOf(f) === null);
    let chosen = wanted.length ? wanted : plain;
    if (opts.variant && !wanted.length && plain.length)
      notes.push(`${c} has no ${opts.variant} variant: taking its plain weights`);
    if (!chosen.length && weights.length) {
      const other = variantOf(weights[0]!)!;
      chosen = weights.filter((f) => variantOf(f) === other);
      notes.push(`${c} has only ${other} weights: taking those`);
    }
    if (!chosen.length) {
      const pickles = all.some((f) => f.path.startsWith(`${c}/`) && PICKLES.test(f.path));
      throw new VidpriorError(
        'E_MODEL_MISSING',
        `${repo} has no safetensors weights for ${c}${pickles ? ' (only PyTorch pickles, which vidprior does not load)' : ''}`,
        { repo, component: c },
      );
    }
    files.push(...chosen);
  }
  return { format: 'diffusers', files, notes };
}
