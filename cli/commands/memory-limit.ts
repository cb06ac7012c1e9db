/**
 * `--memory-limit` of the commands that stylize frames: the frames at their working size and the model's weights
 * must fit it, checked once the model is loaded and before the first frame runs (src/pipelines/memory.ts). Without
 * the option (or VIDPRIOR_MEMORY_LIMIT_GB) the limit is the machine's memory on the CPU provider, where the UNet's
 * attention is host memory; on a GPU provider nothing is checked then.
 */
import { totalmem } from 'node:os';
import { config } from '../../src/config.js';
import { type FitPlan, planWork } from '../../src/io/size.js';
import { modelWeightBytes } from '../../src/models/folder.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { checkRunMemory, memoryModelOf } from '../../src/pipelines/memory.js';
import type { Runtime } from '../../src/runtime/types.js';

export function memoryLimitOption() {
  return {
    type: 'number',
    default: config().memoryLimitGb,
    describe:
      "GiB the run may use, the model's weights included; refuses beforehand above it (default: the machine's memory on CPU)",
  } as const;
}

export interface MemoryLimitArgs {
  'memory-limit'?: number;
  batch: number;
  guidance: number;
}

/** E_TOO_LARGE, naming the sizes, the limit and a `--work-size` that fits, when the frames of `plan` do not fit. */
export async function checkFramesFit(
  a: MemoryLimitArgs,
  model: StableDiffusionModel,
  runtime: Runtime,
  plan: FitPlan,
): Promise<void> {
  const ep = runtime.decision.ep;
  const gb = a['memory-limit'];
  if (gb === undefined && ep !== 'cpu') return;
  const { width, height } = plan.original;
  checkRunMemory({
    original: plan.original,
    working: plan.working,
    run: { batch: a.batch, guided: a.guidance > 1 },
    model: memoryModelOf(model, ep),
    weightBytes: await modelWeightBytes(model.dir),
    limit: gb === undefined ? totalmem() : gb * 2 ** 30,
    limitSource: gb === undefined ? "this machine's memory" : '--memory-limit, or VIDPRIOR_MEMORY_LIMIT_GB',
    workingAt: (side) =>
      planWork(width, height, { multiple: plan.multiple, workSize: side, fit: plan.mode, padMode: plan.padMode })
        .working,
  });
}
