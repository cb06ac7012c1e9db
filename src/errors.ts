/**
 * The one error class of vidprior. Every error a user can act on carries a stable `code`; the boundaries
 * (CLI → stderr + exit code, websocket handler → error message, watcher → error file) turn it into output.
 * Codes are part of the wire protocol: keep this table and protocol/PROTOCOL.md in step.
 */
export const ERROR_CODES = {
  E_BAD_REQUEST: 'a request or command-line argument is malformed or out of range',
  E_BAD_INPUT: 'an input file (image, video, noise, job.json) is missing, unreadable or of the wrong shape',
  E_MODEL_MISSING: 'a model folder lacks a required file',
  E_MODEL_INPUT: 'a model file does not have the inputs/outputs/shapes vidprior expects',
  E_ADAPTER: 'a LoRA adapter file is unreadable or does not fit the model',
  E_ONNX: 'an ONNX model could not be read, written or transformed',
  E_SHAPE: 'static shape inference failed or shapes do not agree',
  E_NO_GRADIENT: 'autodiff met an operator without a gradient rule',
  E_EP_UNAVAILABLE: 'the requested execution provider cannot be used on this machine',
  E_RUNTIME: 'ONNX Runtime failed while creating or running a session',
  E_FFMPEG: 'ffmpeg is missing or failed',
  E_IO: 'a file or folder could not be read or written (permissions, disk full, a path that vanished)',
  E_DOWNLOAD: 'a download from the model hub failed or does not match the size and hash the hub announced',
  E_CANCELLED: 'the job was cancelled',
  E_PROTOCOL: 'a message could not be decoded or is not valid for the protocol',
  E_VERSION: 'the client speaks a protocol version the daemon does not',
  E_AUTH: 'the token is missing or wrong',
  E_TOO_LARGE:
    'a message or frame exceeds the configured limit, or a training step would need more memory than the limit',
  E_FORBIDDEN_PATH: 'a path lies outside the folders the daemon may read or write',
  E_NOT_FOUND: 'the job, model or adapter named does not exist',
  E_BUSY: 'the daemon cannot take the request now',
  E_CONNECTION: 'the daemon cannot be reached, or the connection to it was lost',
  E_SCHEDULER: 'the cluster scheduler (Slurm) is missing or refused a command; its message says why',
  E_INTERNAL: 'a bug in vidprior: please report it with the message',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class VidpriorError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable detail (the bad value, the file, the node name…). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VidpriorError';
    this.code = code;
    this.details = details;
  }
}

/** True for errors caused by the user's input (shown without a stack trace). */
export function isUserError(err: unknown): boolean {
  return err instanceof VidpriorError && err.code !== 'E_INTERNAL';
}

/** Wraps anything thrown into a VidpriorError, keeping the original as `cause`. */
export function asVidpriorError(err: unknown, fallback: ErrorCode = 'E_INTERNAL'): VidpriorError {
  if (err instanceof VidpriorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new VidpriorError(fallback, message, undefined, { cause: err });
}

/** Throws E_BAD_REQUEST naming the parameter and the value when `ok` is false. */
export function check(ok: boolean, what: string, value: unknown, expected: string): asserts ok {
  if (!ok) {
    throw new VidpriorError('E_BAD_REQUEST', `${what} must be ${expected}, got ${JSON.stringify(value)}`, {
      [what]: value,
    });
  }
}
