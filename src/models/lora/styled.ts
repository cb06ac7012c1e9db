/**
 * Style LoRAs applied to a model folder's components: the files read once, then per component the ONNX
 * model loaded, the LoRAs merged into its initializers (merge.ts) and, for inference, a session opened on
 * the result. The folder's files are never changed.
 */
import { join } from 'node:path';
import { loadModel } from '../../onnx/external-data.js';
import type { Model } from '../../onnx/ir.js';
import type { Runtime, Session, SessionOptions } from '../../runtime/types.js';
import { createSessionFromModel } from '../session-from-model.js';
import { type LoraComponent, type LoraSpec, loraLabel, readLoraFile } from './lora-file.js';
import { type MergeReport, type WeightedLora, mergeLoras } from './merge.js';
import { runtimeProduct } from './product.js';

/** Style LoRAs read from their files, with the multipliers they were given. */
export interface StyleLoras {
  specs: LoraSpec[];
  loras: WeightedLora[];
}

/** What an adapter trained on top of style LoRAs records about them. */
export interface StyleLoraRecord {
  file: string;
  weight: number;
  sha256?: string;
}

export async function readStyleLoras(specs: readonly LoraSpec[]): Promise<StyleLoras> {
  const loras: WeightedLora[] = [];
  for (const s of specs) loras.push({ file: await readLoraFile(s.path), weight: s.weight });
  return { specs: [...specs], loras };
}

/** True when some LoRA has layers for `component`. */
export function touches(styles: StyleLoras | null | undefined, component: LoraComponent): boolean {
  return Boolean(styles?.loras.some((l) => l.file.entries.some((e) => e.component === component)));
}

/** A line per LoRA for the user: file, weight, layers per component. */
export function describeStyles(styles: StyleLoras): string[] {
  return styles.loras.map((l, i) => {
    const unet = l.file.entries.filter((e) => e.component === 'unet').length;
    const te = l.file.entries.length - unet;
    return `LoRA ${loraLabel(styles.specs[i]!)} (${l.file.layout} layout): ${unet} UNet and ${te} text-encoder layers`;
  });
}

export function styleRecord(styles: StyleLoras): StyleLoraRecord[] {
  return styles.loras.map((l, i) => ({ file: styles.specs[i]!.path, weight: l.weight, sha256: l.file.sha256 }));
}

/**
 * `<dir>/<component>/model.onnx` with the LoRAs merged into its weights; with a runtime, the products run on
 * it (src/models/lora/product.ts: tens of times faster than in JavaScript for SD 1.5-sized LoRAs).
 */
export async function loadStyledComponent(
  dir: string,
  component: LoraComponent,
  styles: StyleLoras,
  runtime?: Runtime,
): Promise<{ model: Model; report: MergeReport }> {
  const model = await loadModel(join(dir, component, 'model.onnx'));
  const fast = runtime ? await runtimeProduct(runtime) : null;
  try {
    const report = await mergeLoras(model, component, styles.loras, fast?.product);
    return { model, report };
  } finally {
    await fast?.release();
  }
}

/** A session on `<dir>/<component>/model.onnx` with the LoRAs merged in. */
export async function openStyledSession(
  runtime: Runtime,
  dir: string,
  component: LoraComponent,
  styles: StyleLoras,
  options: SessionOptions = {},
): Promise<Session> {
  const { model } = await loadStyledComponent(dir, component, styles, runtime);
  return createSessionFromModel(runtime, model, { label: `${component}+lora`, ...options });
}
