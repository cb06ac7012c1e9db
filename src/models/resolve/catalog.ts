/**
 * The models vidprior can offer without being told a path (`vidprior models list`, the daemon's
 * `list_models`): the embedded default, models used recently (their paths, checked to still exist), SD
 * pipelines in the Hugging Face cache (by repo id), and converted folders in vidprior's cache that no recent
 * entry stands for. Each `name` is what `--model` (or a job's `model` parameter) takes back.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cachedRepos } from '../hf-cache.js';
import { convertedRoot, isCompleteFolder, recentModels } from './model-cache.js';
import { EMBEDDED_MODEL } from './resolve.js';

export type ModelOrigin = 'built-in' | 'recent' | 'hf-cache' | 'converted';

export interface AvailableModel {
  /** What `--model` takes: a path, a repo id, or embedded-default. */
  name: string;
  origin: ModelOrigin;
  /** checkpoint, diffusers, onnx, embedded. */
  kind: string;
  description: string;
  /** The ONNX folder it was converted to, when known. */
  dir?: string;
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export async function availableModels(): Promise<AvailableModel[]> {
  const out: AvailableModel[] = [
    {
      name: EMBEDDED_MODEL,
      origin: 'built-in',
      kind: 'embedded',
      description:
        'tiny SD 1.x with random weights, built by vidprior (shows the path working; its pictures are noise)',
    },
  ];
  const named = new Set<string>();
  for (const r of await recentModels()) {
    const isRepo = !r.ref.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(r.ref);
    if (!isRepo && !existsSync(r.ref)) continue;
    out.push({
      name: r.ref,
      origin: 'recent',
      kind: r.kind,
      description: `${r.kind}, last used ${r.used_at}`,
      dir: r.dir,
    });
    named.add(r.ref);
    named.add(r.dir);
  }
  for (const repo of cachedRepos()) {
    if (named.has(repo.repo)) continue;
    const snap = repo.snapshots[0]!;
    const kind = existsSync(join(snap, 'unet', 'model.onnx'))
      ? 'onnx'
      : existsSync(join(snap, 'model_index.json'))
        ? 'diffusers'
        : null;
    if (!kind) continue; // not a pipeline (a tokenizer, a LoRA, another kind of model)
    const index = readJson(join(snap, 'model_index.json'));
    const cls = typeof index?._class_name === 'string' ? ` (${index._class_name})` : '';
    out.push({ name: repo.repo, origin: 'hf-cache', kind, description: `Hugging Face cache${cls}` });
  }
  const root = convertedRoot();
  if (existsSync(root)) {
    for (const key of readdirSync(root).sort()) {
      const dir = join(root, key);
      if (key.startsWith('.') || named.has(dir) || !isCompleteFolder(dir)) continue;
      const meta = readJson(join(dir, 'vidprior-model.json'));
      const from = typeof meta?.source === 'string' ? meta.source : '?';
      out.push({
        name: dir,
        origin: 'converted',
        kind: 'onnx',
        description: `converted from ${from} (${meta?.dtype ?? '?'})`,
        dir,
      });
    }
  }
  return out;
}
