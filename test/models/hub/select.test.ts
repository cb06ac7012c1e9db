/**
 * Which files of a hub repo a pull takes: the pipeline's files only, the asked variant with fallbacks, sharded
 * weights with their index, ONNX exports with their external data, and clear refusals for repos that are not
 * an SD pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type RepoFile, selectPipelineFiles } from '../../../src/models/hub/select.js';

const repo = (...paths: string[]): RepoFile[] => paths.map((path) => ({ path, size: 1, oid: 'a'.repeat(40) }));
const base = [
  'model_index.json',
  'scheduler/scheduler_config.json',
  'tokenizer/vocab.json',
  'tokenizer/merges.txt',
  'tokenizer/tokenizer_config.json',
  'tokenizer/special_tokens_map.json',
  'unet/config.json',
  'vae/config.json',
  'text_encoder/config.json',
  'feature_extractor/preprocessor_config.json',
  'safety_checker/model.safetensors',
  'README.md',
];
const paths = (s: { files: RepoFile[] }) => s.files.map((f) => f.path).sort();

test('diffusers: plain weights by default, the variant when asked, with fallbacks noted', () => {
  const files = repo(
    ...base,
    'unet/diffusion_pytorch_model.safetensors',
    'unet/diffusion_pytorch_model.fp16.safetensors',
    'unet/diffusion_pytorch_model.bin',
    'unet/diffusion_pytorch_model.non_ema.safetensors',
    'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/model.fp16.safetensors',
    'text_encoder/pytorch_model.bin',
    'v1-5-pruned.safetensors',
  );
  const plain = selectPipelineFiles('a/b', files, {});
  assert.deepEqual(
    paths(plain).filter((p) => p.includes('.safetensors')),
    [
      'text_encoder/model.fp16.safetensors',
      'unet/diffusion_pytorch_model.safetensors',
      'vae/diffusion_pytorch_model.safetensors',
    ],
  );
  assert.deepEqual(plain.notes, ['text_encoder has only fp16 weights: taking those']);
  assert.ok(paths(plain).includes('tokenizer/special_tokens_map.json'));
  assert.ok(!paths(plain).some((p) => /README|feature_extractor|safety_checker|\.bin$/.test(p)));
  const fp16 = selectPipelineFiles('a/b', files, { variant: 'fp16' });
  assert.deepEqual(
    paths(fp16).filter((p) => p.includes('.safetensors')),
    [
      'text_encoder/model.fp16.safetensors',
      'unet/diffusion_pytorch_model.fp16.safetensors',
      'vae/diffusion_pytorch_model.safetensors',
    ],
  );
  assert.deepEqual(fp16.notes, ['vae has no fp16 variant: taking its plain weights']);
});

test('sharded weights come with their index', () => {
  const files = repo(
    ...base,
    'unet/diffusion_pytorch_model.safetensors.index.json',
    'unet/diffusion_pytorch_model-00001-of-00002.safetensors',
    'unet/diffusion_pytorch_model-00002-of-00002.safetensors',
    'unet/diffusion_pytorch_model.safetensors.index.fp16.json',
    'unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors',
    'unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors',
    'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/model.safetensors',
  );
  const fp16 = paths(selectPipelineFiles('a/b', files, { variant: 'fp16' })).filter((p) => p.startsWith('unet/'));
  assert.deepEqual(fp16, [
    'unet/config.json',
    'unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors',
    'unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors',
    'unet/diffusion_pytorch_model.safetensors.index.fp16.json',
  ]);
});

test('an ONNX export: its four models with their external data; --format picks when both are there', () => {
  const files = repo(
    ...base,
    'unet/diffusion_pytorch_model.safetensors',
    'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/model.safetensors',
    'text_encoder/model.onnx',
    'unet/model.onnx',
    'unet/weights.pb',
    'vae_encoder/model.onnx',
    'vae_decoder/model.onnx',
    'vae_decoder/config.json',
  );
  const onnx = selectPipelineFiles('a/b', files, {});
  assert.equal(onnx.format, 'onnx');
  assert.deepEqual(
    paths(onnx).filter((p) => /^(unet|text_encoder|vae_encoder|vae_decoder)\//.test(p)),
    [
      'text_encoder/config.json',
      'text_encoder/model.onnx',
      'unet/config.json',
      'unet/model.onnx',
      'unet/weights.pb',
      'vae_decoder/config.json',
      'vae_decoder/model.onnx',
      'vae_encoder/model.onnx',
    ],
  );
  assert.equal(selectPipelineFiles('a/b', files, { format: 'diffusers' }).format, 'diffusers');
});

test('repos that are not an SD pipeline are refused with what they lack', () => {
  assert.throws(
    () => selectPipelineFiles('a/ckpt', repo('v1-5-pruned.safetensors', 'README.md'), {}),
    (e: Error & { code?: string }) =>
      e.code === 'E_MODEL_MISSING' && /a\/ckpt .*no model_index\.json \(a single-file checkpoint repo/.test(e.message),
  );
  assert.throws(
    () =>
      selectPipelineFiles(
        'a/bin',
        repo(
          ...base,
          'unet/diffusion_pytorch_model.bin',
          'vae/diffusion_pytorch_model.safetensors',
          'text_encoder/model.safetensors',
        ),
        {},
      ),
    /a\/bin has no safetensors weights for unet \(only PyTorch pickles/,
  );
  assert.throws(
    () => selectPipelineFiles('a/b', repo(...base), { format: 'onnx' }),
    /a\/b is not an ONNX export: it has no text_encoder\/model\.onnx/,
  );
});
