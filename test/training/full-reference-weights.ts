/**
 * Writes the base weights of a UNet .onnx as safetensors keyed by diffusers parameter names, in diffusers'
 * layout (the same names and layout as a full fine-tune's delta file): what full-reference.py loads into
 * diffusers' UNet2DConditionModel (strictly: every parameter must be there, none extra).
 *
 *   node dist/test/training/full-reference-weights.js <unet/model.onnx> <out.safetensors>
 */
import { loadModel } from '../../src/onnx/external-data.js';
import { findFullParams } from '../../src/training/full.js';
import { deltaTensors } from '../../src/training/full-delta.js';
import { writeSafetensors } from '../../src/training/safetensors.js';

const [modelPath, out] = process.argv.slice(2);
if (!modelPath || !out) {
  process.stderr.write('usage: full-reference-weights.js <unet/model.onnx> <out.safetensors>\n');
  process.exit(2);
}
const model = await loadModel(modelPath);
const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
const params = findFullParams(model);
await writeSafetensors(
  out,
  deltaTensors(params.map((param) => ({ param, data: inits.get(param.initializer)!.data as Float32Array }))),
);
process.stdout.write(`${params.length} parameters\n`);
