/**
 * Frames for the method's first steps, shared by `edit-keyframe`, `finetune` and `run` (and the daemon's
 * jobs): the clip brought to the model's working size, the edited keyframes brought to the same size.
 */
import { VidpriorError } from '../../src/errors.js';
import { imageSize, readFrame } from '../../src/io/frames.js';
import { type FrameSource, openFrameSource } from '../../src/io/inputs.js';
import { type FitMode, fitIsIdentity, padFrame } from '../../src/io/size.js';
import type { StableDiffusionModel } from '../../src/models/types.js';
import { sizeMultiple } from '../../src/pipelines/img2img.js';
import type { Tensor } from '../../src/tensor.js';
import type { Reporter } from './output.js';

export interface EditSpec {
  /** Index of the edited frame in the clip (0-based, natural order). */
  frame: number;
  /** The edited image. */
  path: string;
}

/** Parses `--edit <frame-index>=<edited.png>`; the error names the bad value. */
export function parseEdit(value: string): EditSpec {
  const m = /^(\d+)=(.+)$/.exec(value.trim());
  if (!m) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `--edit must be <frame-index>=<edited image>, e.g. --edit 12=edit.png; got ${JSON.stringify(value)}`,
      { edit: value },
    );
  }
  return { frame: Number(m[1]), path: m[2]! };
}

/** Opens the clip at the working size of `model`, saying so when frames are resized or padded. */
export async function openClip(
  model: StableDiffusionModel,
  input: string,
  fit: FitMode,
  reporter: Reporter,
): Promise<FrameSource> {
  const source = await openFrameSource(input, {
    multiple: sizeMultiple(model),
    fit,
    onDecodeProgress: (n, total) =>
      reporter.progress(
        { event: 'decode', frame: n, frames: total },
        `decoding ${input}: frame ${n}/${total}`,
        total ? n / total : undefined,
      ),
  });
  const work = source.plan!.working;
  if (!fitIsIdentity(source.plan!)) {
    reporter.note(
      `frames are ${source.width}×${source.height}: the model works at ${work.width}×${work.height} (${fit}) and outputs are brought back`,
    );
  }
  return source;
}

/** Checks a frame index against the clip; the error names it and the clip's range. */
export function checkFrameIndex(source: FrameSource, index: number, what = '--frame'): void {
  if (!Number.isInteger(index) || index < 0 || index >= source.frames.length) {
    throw new VidpriorError(
      'E_BAD_REQUEST',
      `${what} ${index} is outside the clip's frames 0..${source.frames.length - 1} (${source.path})`,
      { frame: index },
    );
  }
}

/**
 * Reads an edited keyframe at the clip's working size: an edit of the clip's own size goes through the same
 * resize/pad as the frames; an edit of another size (made elsewhere) is resized to the working size.
 */
export async function readEdit(source: FrameSource, edit: EditSpec, reporter: Reporter): Promise<Tensor<'float32'>> {
  checkFrameIndex(source, edit.frame, `--edit frame`);
  const size = await imageSize(edit.path);
  const plan = source.plan!;
  if (size.width === source.width && size.height === source.height) {
    if (plan.mode === 'pad' && !fitIsIdentity(plan)) return padFrame(await readFrame(edit.path), plan);
    return readFrame(edit.path, fitIsIdentity(plan) ? {} : { resize: plan.working });
  }
  reporter.note(
    `edit ${edit.path} is ${size.width}×${size.height}, the clip ${source.width}×${source.height}: resizing the edit to ${plan.working.width}×${plan.working.height}`,
  );
  return readFrame(edit.path, { resize: plan.working });
}
