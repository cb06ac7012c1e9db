/** PyTorch zip checkpoints (.ckpt/.pt/.bin): placeholder until the restricted reader lands. */
import { VidpriorError } from '../../errors.js';
import type { TensorSource } from './tensor-source.js';

export async function openTorchCheckpoint(path: string): Promise<TensorSource> {
  throw new VidpriorError(
    'E_MODEL_INPUT',
    `${path} is a PyTorch pickle checkpoint: vidprior reads .safetensors only (pickles can run code)`,
    { file: path },
  );
}
