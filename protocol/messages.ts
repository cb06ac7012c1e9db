/**
 * Every message of the vidprior protocol, both directions, as runtime schemas with their TypeScript types
 * inferred from them. protocol/PROTOCOL.md describes the same set for people; test/protocol keeps the two in
 * step (every type and every error code is in the spec, every example validates).
 *
 * Wire: one MessagePack map per binary websocket message (see codec.ts). Every map has a `type`. Requests
 * carry an `id` (string or integer chosen by the client); the reply carries the same `id`. Job events
 * (`progress`, `frame`, `done`, and `error` with a `job`) carry the job id instead.
 */
import { ERROR_CODES, type ErrorCode, VidpriorError } from '../src/errors.js';
import { JOB_KINDS, JobKindSchema } from './params.js';
import {
  type Infer,
  type Input,
  type Schema,
  any,
  array,
  bin,
  bool,
  int,
  isPlainMap,
  literal,
  num,
  object,
  oneOf,
  optional,
  record,
  str,
  withDefault,
  describeValue,
} from './schema.js';

/** The protocol version this build speaks. A change that breaks old peers bumps it. */
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];

export const JOB_STATES = ['queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/** A request id: a string of 1–128 characters or a non-negative integer. */
const requestId: Schema<string | number> = {
  expected: 'a request id (string or non-negative integer)',
  isOptional: false,
  parse(v, path) {
    if (typeof v === 'string' && v.length >= 1 && v.length <= 128) return v;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    throw new VidpriorError(
      'E_PROTOCOL',
      `${path} must be a request id (string of 1–128 characters or non-negative integer), got ${describeValue(v)}`,
      { field: path },
    );
  },
};
export type RequestId = string | number;

/** Job ids are made by the daemon: `j-` + date + random hex (see daemon/jobs/store.ts; older daemons made 6 digits). */
export const JOB_ID = /^j-[0-9]{8}-[0-9]{6}-[0-9a-f]{6,16}$/;
const jobId: Schema<string> = {
  expected: 'a job id such as "j-20261125-142301-3fa9c2"',
  isOptional: false,
  parse(v, path) {
    if (typeof v !== 'string')
      throw new VidpriorError('E_PROTOCOL', `${path} must be a job id string, got ${describeValue(v)}`, {
        field: path,
      });
    if (!JOB_ID.test(v))
      throw new VidpriorError(
        'E_NOT_FOUND',
        `no job ${JSON.stringify(v.slice(0, 80))}: job ids look like "j-20261125-142301-3fa9c2"`,
        { job: v.slice(0, 80) },
      );
    return v;
  },
};

const fileName = () => str({ min: 1, max: 255 });
/** Upload ids are made by the daemon (`u-` + 32 hex digits); an unknown one is E_NOT_FOUND. */
const uploadIdString = () => str({ min: 1, max: 64 });
const pathString = () => str({ min: 1, max: 4096 });

// ---- client → daemon ------------------------------------------------------------------------------------

/**
 * One input frame: PNG (or JPEG) bytes, or a `path` the daemon reads itself — allowed only when the client is
 * on the same machine (loopback) and the path lies inside the daemon's allowed folders. Exactly one of the two.
 */
export const FrameInput = object({
  name: optional(fileName()),
  png: optional(bin()),
  path: optional(pathString()),
  /** A finished upload (`upload_begin` … `upload_end`) holding the frame's bytes, for strips too big for one message. */
  upload: optional(uploadIdString()),
});
export type FrameInput = Infer<typeof FrameInput>;

/** An edited keyframe for fine-tuning: the edit of input frame `frame`. */
export const EditInput = object({
  frame: int({ min: 0, max: 1_000_000 }),
  png: optional(bin()),
  path: optional(pathString()),
  upload: optional(uploadIdString()),
});
export type EditInput = Infer<typeof EditInput>;

/** Explicit initial noise: float32 little-endian, shape `dims` = the latent shape [1, C, H/f, W/f]. */
export const NoiseInput = object({
  dims: array(int({ min: 1, max: 65536 }), { min: 1, max: 8 }),
  data: bin(),
});
export type NoiseInput = Infer<typeof NoiseInput>;

export const Hello = object({
  type: literal('hello'),
  id: requestId,
  protocol: int({ min: 0, max: 1_000_000 }),
  client: optional(str({ max: 200 })),
  token: optional(str({ max: 1024 })),
});

export const Submit = object({
  type: literal('submit'),
  id: requestId,
  kind: JobKindSchema,
  /** Checked per kind (params.ts) by the daemon; a map here. */
  params: record(any()),
  /** As many as the daemon's `max_frames` (more is E_TOO_LARGE, checked by the daemon against its limit). */
  frames: array(FrameInput, { min: 1, max: Number.MAX_SAFE_INTEGER }),
  /** Edited keyframes (finetune, run: up to 64), or the processed version of every frame (deflicker): the daemon
   * checks the count against the kind and `max_frames`. */
  edits: optional(array(EditInput, { max: Number.MAX_SAFE_INTEGER })),
  noise: optional(NoiseInput),
  /** A label for people (shown in job lists). */
  name: optional(str({ max: 200 })),
  /** Also write the output frames to this folder (local clients, inside the allowed folders). */
  output_dir: optional(pathString()),
  /** Send this connection the job's events (default true). */
  subscribe: withDefault(bool(), true),
});

export const Cancel = object({ type: literal('cancel'), id: requestId, job: jobId });

export const ListJobs = object({
  type: literal('list_jobs'),
  id: requestId,
  state: optional(oneOf(JOB_STATES)),
  limit: withDefault(int({ min: 1, max: 10_000 }), 100),
});

export const GetJob = object({ type: literal('get_job'), id: requestId, job: jobId });

export const Attach = object({
  type: literal('attach'),
  id: requestId,
  job: jobId,
  /** Replay finished output frames (index ≥ from_index) before live events (default true). */
  replay: withDefault(bool(), true),
  from_index: withDefault(int({ min: 0, max: 1_000_000 }), 0),
});

export const Detach = object({ type: literal('detach'), id: requestId, job: jobId });

export const ListModels = object({ type: literal('list_models'), id: requestId });

/** Removes a finished job and its files (its published adapter stays). */
export const DeleteJob = object({ type: literal('delete_job'), id: requestId, job: jobId });

/**
 * Chunked uploads: a file (one frame or edit) sent in pieces under the message limit, resumable after a lost
 * connection (`upload_status` says how much arrived), then named by its id in `submit` (FrameInput.upload).
 */
export const UploadBegin = object({
  type: literal('upload_begin'),
  id: requestId,
  /** For logs and messages only. */
  name: optional(fileName()),
  /** The whole file's size (at most `max_frame_bytes`). */
  bytes: int({ min: 1, max: 2 ** 40 }),
  /** Hex SHA-256 of the whole file, checked at `upload_end`. */
  sha256: optional(str({ min: 64, max: 64 })),
});

export const UploadChunk = object({
  type: literal('upload_chunk'),
  id: requestId,
  upload: uploadIdString(),
  /** Where `data` starts in the file: exactly the bytes received so far (see `upload_status`). */
  offset: int({ min: 0, max: 2 ** 40 }),
  /** At most `chunk_bytes` (in the `upload` reply). */
  data: bin(),
});

export const UploadStatus = object({ type: literal('upload_status'), id: requestId, upload: uploadIdString() });

export const UploadEnd = object({ type: literal('upload_end'), id: requestId, upload: uploadIdString() });

export const CLIENT_MESSAGES = {
  hello: Hello,
  submit: Submit,
  cancel: Cancel,
  list_jobs: ListJobs,
  get_job: GetJob,
  attach: Attach,
  detach: Detach,
  list_models: ListModels,
  delete_job: DeleteJob,
  upload_begin: UploadBegin,
  upload_chunk: UploadChunk,
  upload_status: UploadStatus,
  upload_end: UploadEnd,
} as const;

export type Hello = Infer<typeof Hello>;
export type Submit = Infer<typeof Submit>;
export type Cancel = Infer<typeof Cancel>;
export type ListJobs = Infer<typeof ListJobs>;
export type GetJob = Infer<typeof GetJob>;
export type Attach = Infer<typeof Attach>;
export type Detach = Infer<typeof Detach>;
export type ListModels = Infer<typeof ListModels>;
export type DeleteJob = Infer<typeof DeleteJob>;
export type UploadBegin = Infer<typeof UploadBegin>;
export type UploadChunk = Infer<typeof UploadChunk>;
export type UploadStatus = Infer<typeof UploadStatus>;
export type UploadEnd = Infer<typeof UploadEnd>;
/** A client message as the daemon sees it after parsing (defaults filled in). */
export type ClientMessage = {
  [K in keyof typeof CLIENT_MESSAGES]: Infer<(typeof CLIENT_MESSAGES)[K]>;
}[keyof typeof CLIENT_MESSAGES];
/** A client message as a client may write it (fields with defaults may be left out). */
export type ClientMessageIn = {
  [K in keyof typeof CLIENT_MESSAGES]: Input<(typeof CLIENT_MESSAGES)[K]>;
}[keyof typeof CLIENT_MESSAGES];

// ---- daemon → client ------------------------------------------------------------------------------------

const timestamp = () => str({ max: 40 }); // ISO 8601, UTC
const errorCode: Schema<ErrorCode> = oneOf(Object.keys(ERROR_CODES) as ErrorCode[]);

export const JobError = object({ code: errorCode, message: str({ max: 10_000 }) });

export const JobSummary = object({
  id: str({ min: 1, max: 64 }),
  kind: JobKindSchema,
  state: oneOf(JOB_STATES),
  name: optional(str({ max: 200 })),
  created_at: timestamp(),
  started_at: optional(timestamp()),
  finished_at: optional(timestamp()),
  /** Output frames the job will produce, and how many are finished. */
  frames_total: int(),
  frames_done: int(),
  /** Overall progress, 0 to 1. */
  fraction: num({ min: 0, max: 1 }),
  /** Training jobs (finetune, run): the iterations asked for and those done so far (known while it runs). */
  iterations_total: optional(int()),
  iterations_done: optional(int()),
  error: optional(JobError),
});
export type JobSummary = Infer<typeof JobSummary>;

export const JobDetail = object({
  ...JobSummary.shape,
  params: record(any()),
  /** Input frame names, in order. */
  inputs: array(str({ max: 255 })),
  /** Names of the finished output frames, by output index (absent ones are empty strings). */
  outputs: array(str({ max: 255 })),
  /** Place in the queue (0 = next) while queued. */
  position: optional(int()),
  /** The adapter a finetune/run job wrote (its name in `list_models`). */
  adapter: optional(str({ max: 128 })),
});
export type JobDetail = Infer<typeof JobDetail>;

export const Welcome = object({
  type: literal('welcome'),
  id: requestId,
  protocol: int(),
  server: object({ name: str(), version: str() }),
  /** What this daemon offers this connection: `kind:<kind>` per job kind it can run, `paths`, `output_dir`, `noise`, `attach`. */
  capabilities: array(str({ max: 100 })),
  limits: object({
    max_message_bytes: int({ max: 2 ** 40 }),
    max_frame_bytes: int({ max: 2 ** 40 }),
    max_frames: int(),
  }),
  /** The execution provider asked for or in use ("auto", "cpu", "webgpu", "cuda"). */
  ep: str({ max: 40 }),
  /** The model jobs run on (a folder name, or "embedded-default"). */
  model: str({ max: 4096 }),
});

export const Accepted = object({ type: literal('accepted'), id: requestId, job: JobSummary });
export const Ok = object({ type: literal('ok'), id: requestId });
export const Jobs = object({ type: literal('jobs'), id: requestId, jobs: array(JobSummary) });
export const Job = object({ type: literal('job'), id: requestId, job: JobDetail });
export const Attached = object({ type: literal('attached'), id: requestId, job: JobDetail });

export const ModelInfo = object({
  name: str({ max: 4096 }),
  path: optional(str({ max: 4096 })),
  default: bool(),
  loaded: bool(),
  description: str({ max: 1000 }),
});
export const AdapterInfo = object({
  name: str({ max: 128 }),
  job: optional(str({ max: 64 })),
  prompt: optional(str({ max: 4000 })),
  created_at: optional(timestamp()),
  bytes: int({ max: 2 ** 40 }),
});
export const Models = object({
  type: literal('models'),
  id: requestId,
  models: array(ModelInfo),
  adapters: array(AdapterInfo),
});

export const Progress = object({
  type: literal('progress'),
  job: str({ max: 64 }),
  state: oneOf(JOB_STATES),
  /** What the job is doing: queued, loading, encoding, denoising, decoding, training, saving… */
  stage: str({ max: 40 }),
  fraction: num({ min: 0, max: 1 }),
  frames_done: int(),
  frames_total: int(),
  position: optional(int()),
  frame: optional(int()),
  step: optional(int()),
  steps: optional(int()),
  iteration: optional(int()),
  iterations: optional(int()),
  loss: optional(num()),
  message: optional(str({ max: 1000 })),
});

export const Frame = object({
  type: literal('frame'),
  job: str({ max: 64 }),
  /** Output index: frame order for stylize, candidate number for edit-keyframe. */
  index: int(),
  name: str({ max: 255 }),
  png: bin(),
  /** True when re-sent by `attach` (the frame was finished before). */
  replay: bool(),
  /** The seed of an edit-keyframe candidate. */
  seed: optional(int()),
});

export const Done = object({
  type: literal('done'),
  job: str({ max: 64 }),
  outputs: object({
    frames: int(),
    names: array(str({ max: 255 })),
    adapter: optional(str({ max: 128 })),
    /** Where the daemon keeps the outputs (a path on the daemon's machine). */
    dir: optional(str({ max: 4096 })),
  }),
  elapsed_s: num({ min: 0 }),
});

/** The reply to every upload request: where the upload stands. */
export const Upload = object({
  type: literal('upload'),
  id: requestId,
  upload: str({ max: 64 }),
  /** The whole file's size, and the bytes received so far (the next chunk's offset). */
  bytes: int({ max: 2 ** 40 }),
  received: int({ max: 2 ** 40 }),
  /** True once `upload_end` accepted it: `submit` may name it. */
  complete: bool(),
  /** Largest `upload_chunk.data` this daemon takes. */
  chunk_bytes: int({ min: 1, max: 2 ** 40 }),
});

export const ErrorMessage = object({
  type: literal('error'),
  /** The request this answers, when there is one. */
  id: optional(requestId),
  /** The job that failed or was cancelled (code E_CANCELLED), when this is a job event. */
  job: optional(str({ max: 64 })),
  code: errorCode,
  message: str({ max: 10_000 }),
  details: optional(record(any())),
});

export const SERVER_MESSAGES = {
  welcome: Welcome,
  accepted: Accepted,
  ok: Ok,
  jobs: Jobs,
  job: Job,
  attached: Attached,
  models: Models,
  progress: Progress,
  frame: Frame,
  done: Done,
  upload: Upload,
  error: ErrorMessage,
} as const;

export type Welcome = Infer<typeof Welcome>;
export type Accepted = Infer<typeof Accepted>;
export type Ok = Infer<typeof Ok>;
export type Jobs = Infer<typeof Jobs>;
export type Job = Infer<typeof Job>;
export type Attached = Infer<typeof Attached>;
export type Models = Infer<typeof Models>;
export type ModelInfo = Infer<typeof ModelInfo>;
export type AdapterInfo = Infer<typeof AdapterInfo>;
export type Progress = Infer<typeof Progress>;
export type Frame = Infer<typeof Frame>;
export type Done = Infer<typeof Done>;
export type Upload = Infer<typeof Upload>;
export type ErrorMessage = Infer<typeof ErrorMessage>;
export type ServerMessage = {
  [K in keyof typeof SERVER_MESSAGES]: Infer<(typeof SERVER_MESSAGES)[K]>;
}[keyof typeof SERVER_MESSAGES];
/** The job events (everything a subscribed connection receives without asking). */
export type JobEvent = Progress | Frame | Done | (ErrorMessage & { job: string });

// ---- parsing --------------------------------------------------------------------------------------------

function parseWith<M>(table: Record<string, Schema<unknown>>, value: unknown, direction: string): M {
  if (!isPlainMap(value)) {
    throw new VidpriorError(
      'E_PROTOCOL',
      `a message must be a MessagePack map with a "type", got ${describeValue(value)}`,
    );
  }
  const type = value.type;
  if (typeof type !== 'string') {
    throw new VidpriorError('E_PROTOCOL', `a message must have a string "type", got ${describeValue(type)}`, {
      field: 'type',
    });
  }
  const schema = Object.hasOwn(table, type) ? table[type] : undefined;
  if (!schema) {
    throw new VidpriorError(
      'E_PROTOCOL',
      `unknown ${direction} message type ${JSON.stringify(type.slice(0, 60))} (known: ${Object.keys(table).join(', ')})`,
      { field: 'type', type: type.slice(0, 60) },
    );
  }
  return schema.parse(value, '') as M;
}

/** Validates a decoded message from a client (throws E_PROTOCOL / E_BAD_REQUEST naming the field). */
export function parseClientMessage(value: unknown): ClientMessage {
  return parseWith<ClientMessage>(CLIENT_MESSAGES, value, 'client');
}

/** Validates a decoded message from the daemon. */
export function parseServerMessage(value: unknown): ServerMessage {
  return parseWith<ServerMessage>(SERVER_MESSAGES, value, 'daemon');
}

/** The request id of a message that failed validation, if one can be read (so the error can answer it). */
export function requestIdOf(value: unknown): RequestId | undefined {
  if (!isPlainMap(value)) return undefined;
  try {
    return requestId.parse(value.id, 'id');
  } catch {
    return undefined;
  }
}

/** Error messages are for people and never carry a whole payload back: longer ones are cut. */
const MAX_ERROR_MESSAGE = 2000;

/** An `error` message for a VidpriorError. */
export function errorMessage(err: VidpriorError, ids: { id?: RequestId; job?: string } = {}): ErrorMessage {
  const text = err.message.length > MAX_ERROR_MESSAGE ? `${err.message.slice(0, MAX_ERROR_MESSAGE)}…` : err.message;
  const msg: ErrorMessage = { type: 'error', code: err.code, message: text };
  if (ids.id !== undefined) msg.id = ids.id;
  if (ids.job !== undefined) msg.job = ids.job;
  if (err.details) msg.details = plainDetails(err.details);
  return msg;
}

/** Keeps only MessagePack-plain detail values (strings, numbers, booleans, null, and arrays/maps of them). */
export function plainDetails(details: Record<string, unknown>): Record<string, unknown> {
  const ok = (v: unknown): boolean =>
    v === null ||
    ['string', 'number', 'boolean'].includes(typeof v) ||
    (Array.isArray(v) && v.length <= 100 && v.every(ok)) ||
    (isPlainMap(v) && Object.values(v).every(ok));
  return Object.fromEntries(Object.entries(details).filter(([, v]) => ok(v)));
}

export { JOB_KINDS };
