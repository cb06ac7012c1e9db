/**
 * What the pipelines keep across calls with the same settings: the prompt embeddings (per model: the text
 * encoder's output depends only on the prompt) and the GPU step graph's session (per runtime: it depends only
 * on guidance, prediction type and the UNet's float type). edit-keyframe runs the pipeline once per candidate
 * and the daemon once per job: without this each call re-ran the text encoder and rebuilt the step graph.
 * The results are the same values (the same computation, done once); cached embeddings are shared, so
 * callers treat them as read-only. Step sessions live until their runtime is closed.
 */
import type { StableDiffusionModel } from '../models/types.js';
import type { Runtime, Session } from '../runtime/types.js';
import { type StepGraphSpec, buildStepGraph } from './step-graph.js';
import { type PromptEmbeddings, encodePrompts } from './text.js';

/** Prompt pairs kept per model (oldest dropped first). */
const PROMPTS_PER_MODEL = 16;

const prompts = new WeakMap<StableDiffusionModel, Map<string, Promise<PromptEmbeddings>>>();
const stepSessions = new WeakMap<Runtime, Map<string, Promise<Session>>>();

/** encodePrompts, once per (model, prompt, negative prompt, guidance). */
export function cachedPromptEmbeddings(
  model: StableDiffusionModel,
  prompt: string,
  negativePrompt: string,
  guidance: boolean,
): Promise<PromptEmbeddings> {
  const perModel = prompts.get(model) ?? new Map<string, Promise<PromptEmbeddings>>();
  prompts.set(model, perModel);
  const key = JSON.stringify([prompt, guidance ? negativePrompt : null]);
  let hit = perModel.get(key);
  if (hit) {
    perModel.delete(key); // most recently used goes last
  } else {
    hit = encodePrompts(model, prompt, negativePrompt, guidance);
    const pending = hit;
    pending.catch(() => perModel.get(key) === pending && perModel.delete(key)); // a failure is not remembered
    if (perModel.size >= PROMPTS_PER_MODEL) perModel.delete(perModel.keys().next().value!);
  }
  perModel.set(key, hit);
  return hit;
}

/** The step graph's session for `spec` on `runtime`, created on first use (outputs kept on the GPU). */
export function cachedStepSession(runtime: Runtime, spec: StepGraphSpec): Promise<Session> {
  const perRuntime = stepSessions.get(runtime) ?? new Map<string, Promise<Session>>();
  stepSessions.set(runtime, perRuntime);
  const key = `${spec.prediction}|${spec.guidance}|${spec.unetType}`;
  let hit = perRuntime.get(key);
  if (!hit) {
    hit = runtime.createSession(buildStepGraph(spec), { label: 'ddim-step', keepOutputsOnGpu: true });
    const pending = hit;
    pending.catch(() => perRuntime.get(key) === pending && perRuntime.delete(key));
    perRuntime.set(key, hit);
  }
  return hit;
}
