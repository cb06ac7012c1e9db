/**
 * Example exchanges, one per flow of PROTOCOL.md, as data. `protocol/examples/*.json` is generated from this
 * file (`node dist/protocol/write-examples.js`) and test/protocol checks that the JSON files are current, that
 * every message validates for its direction and that `msgpack_hex` is what codec.ts encodes. The Blender
 * add-on's Python wire code is unit-tested against those JSON files.
 *
 * In the JSON, a binary (MessagePack `bin`) value is written `{"$bin": "<base64>"}`.
 */
import { createHash } from 'node:crypto';
import type { ClientMessageIn as ClientMessage, JobSummary, ServerMessage } from './messages.js';

/** 2×2 RGB PNGs, small enough to read in a JSON file. */
const PNG = {
  in0: 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFUlEQVR42mM4wcBwQgOIGTROaGgAABuOA8GgrinxAAAAAElFTkSuQmCC',
  in1: 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFUlEQVR42mNgOMHAcEKDQeMEEGkAABi+A8EwNmwmAAAAAElFTkSuQmCC',
  out0: 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR42mOosDlREXWCAUIBACmoBi09/7aOAAAAAElFTkSuQmCC',
  out1: 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAE0lEQVR42mOw2RIFRAw2WyqACAAkRAVlygcMUgAAAABJRU5ErkJggg==',
};
const png = (name: keyof typeof PNG): Uint8Array => Uint8Array.from(Buffer.from(PNG[name], 'base64'));

export type ExampleStep =
  | { from: 'client'; note?: string; message: ClientMessage }
  | { from: 'daemon'; note?: string; message: ServerMessage };

export interface Example {
  name: string;
  description: string;
  steps: ExampleStep[];
}

const c = (message: ClientMessage, note?: string): ExampleStep => ({
  from: 'client',
  message,
  ...(note ? { note } : {}),
});
const d = (message: ServerMessage, note?: string): ExampleStep => ({
  from: 'daemon',
  message,
  ...(note ? { note } : {}),
});

const JOB = 'j-20261125-142301-3fa9c2';
const hello = c({ type: 'hello', id: 1, protocol: 1, client: 'blender-addon/0.1' });
const welcome = d({
  type: 'welcome',
  id: 1,
  protocol: 1,
  server: { name: 'vidprior', version: '0.1.0' },
  capabilities: [
    'kind:stylize',
    'kind:edit-keyframe',
    'kind:finetune',
    'kind:run',
    'kind:deflicker',
    'attach',
    'noise',
    'upload',
    'paths',
    'output_dir',
  ],
  limits: { max_message_bytes: 268435456, max_frame_bytes: 33554432, max_frames: 100000 },
  ep: 'auto',
  model: 'embedded-default',
});
interface SummaryOptions {
  state: JobSummary['state'];
  done?: number;
  fraction?: number;
  kind?: JobSummary['kind'];
  total?: number;
  name?: string;
}
const summary = (o: SummaryOptions): JobSummary => ({
  id: JOB,
  kind: o.kind ?? 'stylize',
  state: o.state,
  ...(o.name ? { name: o.name } : {}),
  created_at: '2026-11-25T14:23:01.512Z',
  ...(o.state !== 'queued' ? { started_at: '2026-11-25T14:23:01.530Z' } : {}),
  ...(o.state === 'done' || o.state === 'cancelled' ? { finished_at: '2026-11-25T14:23:09.004Z' } : {}),
  frames_total: o.total ?? 2,
  frames_done: o.done ?? 0,
  fraction: o.fraction ?? 0,
});
const UPLOAD = 'u-5f0c2a9e8b7d41c3a6e2f0b1c9d8e7f6';
const sha256Of = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const upload = (id: number, received: number): Extract<ServerMessage, { type: 'upload' }> => ({
  type: 'upload',
  id,
  upload: UPLOAD,
  bytes: png('in0').length,
  received,
  complete: false,
  chunk_bytes: 8388608,
});
const stylizeParams = {
  prompt: 'a watercolor painting',
  negative_prompt: '',
  strength: 0.45,
  steps: 50,
  guidance: 7.5,
  seed: 0,
  batch: 1,
};

export const EXAMPLES: Example[] = [
  {
    name: 'handshake',
    description:
      'The first message of a connection is hello; the daemon answers welcome with its version, capabilities and limits.',
    steps: [hello, welcome],
  },
  {
    name: 'handshake-token',
    description:
      'A daemon started with --token: the hello carries it. A missing or wrong token is answered E_AUTH and the connection closes (code 1008).',
    steps: [
      c({ type: 'hello', id: 'h1', protocol: 1, client: 'script', token: 'wrong' }),
      d(
        { type: 'error', id: 'h1', code: 'E_AUTH', message: 'the token is missing or wrong' },
        'then the daemon closes the connection',
      ),
    ],
  },
  {
    name: 'handshake-version',
    description:
      'A client speaking a protocol version the daemon does not: E_VERSION with the versions it supports; the connection closes.',
    steps: [
      c({ type: 'hello', id: 1, protocol: 99 }),
      d({
        type: 'error',
        id: 1,
        code: 'E_VERSION',
        message: 'protocol version 99 is not supported (this daemon speaks 1)',
        details: { supported: [1] },
      }),
    ],
  },
  {
    name: 'stylize',
    description: 'Submit two frames as PNG bytes; each output frame is streamed as soon as it is finished, then done.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 2,
        kind: 'stylize',
        name: 'shot 12',
        params: { prompt: 'a watercolor painting', strength: 0.45, steps: 50, seed: 0 },
        frames: [
          { name: 'f0001.png', png: png('in0') },
          { name: 'f0002.png', png: png('in1') },
        ],
        subscribe: true,
      }),
      d({ type: 'accepted', id: 2, job: summary({ state: 'queued', name: 'shot 12' }) }),
      d({
        type: 'progress',
        job: JOB,
        state: 'queued',
        stage: 'queued',
        fraction: 0,
        frames_done: 0,
        frames_total: 2,
        position: 0,
      }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'loading',
        fraction: 0,
        frames_done: 0,
        frames_total: 2,
        message: 'loading model embedded-default',
      }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'denoising',
        fraction: 0.25,
        frames_done: 0,
        frames_total: 2,
        frame: 0,
        step: 12,
        steps: 23,
      }),
      d({ type: 'frame', job: JOB, index: 0, name: 'f0001.png', png: png('out0'), replay: false }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'denoising',
        fraction: 0.75,
        frames_done: 1,
        frames_total: 2,
        frame: 1,
        step: 12,
        steps: 23,
      }),
      d({ type: 'frame', job: JOB, index: 1, name: 'f0002.png', png: png('out1'), replay: false }),
      d({
        type: 'done',
        job: JOB,
        outputs: {
          frames: 2,
          names: ['f0001.png', 'f0002.png'],
          dir: `/home/me/.local/share/vidprior/jobs/${JOB}/outputs`,
        },
        elapsed_s: 7.49,
      }),
    ],
  },
  {
    name: 'stylize-paths',
    description:
      'A client on the same machine names files instead of sending bytes (the daemon must allow the folder: capability "paths"), and asks for the outputs to be written to a folder as well.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 2,
        kind: 'stylize',
        params: { prompt: 'a watercolor painting' },
        frames: [{ path: '/tmp/shot12/f0001.png' }, { path: '/tmp/shot12/f0002.png' }],
        output_dir: '/tmp/shot12/styled',
        subscribe: true,
      }),
      d({ type: 'accepted', id: 2, job: summary({ state: 'queued' }) }),
    ],
  },
  {
    name: 'upload',
    description:
      'A remote client with a strip too big for one message uploads each frame in chunks (each at most chunk_bytes, well under max_message_bytes), resumes after a lost connection from upload_status, and names the uploads in submit. A chunk at the wrong offset is refused, naming where to go on.',
    steps: [
      hello,
      welcome,
      c({ type: 'upload_begin', id: 2, name: 'f0001.png', bytes: png('in0').length, sha256: sha256Of(png('in0')) }),
      d({ ...upload(2, 0), complete: false }),
      c({ type: 'upload_chunk', id: 3, upload: UPLOAD, offset: 0, data: png('in0').subarray(0, 40) }),
      d(upload(3, 40), 'then the connection is lost; the client connects and says hello again'),
      c({ type: 'upload_status', id: 4, upload: UPLOAD }),
      d(upload(4, 40), 'the daemon has 40 bytes: go on from there'),
      c({ type: 'upload_chunk', id: 5, upload: UPLOAD, offset: 0, data: png('in0').subarray(0, 40) }),
      d({
        type: 'error',
        id: 5,
        code: 'E_BAD_REQUEST',
        message: `upload ${UPLOAD}: the chunk starts at offset 0 but 40 bytes have arrived; send from offset 40`,
        details: { field: 'offset', offset: 0, received: 40 },
      }),
      c({ type: 'upload_chunk', id: 6, upload: UPLOAD, offset: 40, data: png('in0').subarray(40) }),
      d(upload(6, png('in0').length)),
      c({ type: 'upload_end', id: 7, upload: UPLOAD }),
      d({ ...upload(7, png('in0').length), complete: true }),
      c({
        type: 'submit',
        id: 8,
        kind: 'stylize',
        params: { prompt: 'a watercolor painting' },
        frames: [{ name: 'f0001.png', upload: UPLOAD }],
        subscribe: true,
      }),
      d(
        { type: 'accepted', id: 8, job: summary({ state: 'queued', total: 1 }) },
        'the upload is used up: the job keeps its own copy; outputs stream back frame by frame as usual',
      ),
      d({ type: 'frame', job: JOB, index: 0, name: 'f0001.png', png: png('out0'), replay: false }),
    ],
  },
  {
    name: 'edit-keyframe',
    description:
      'Keyframe candidates: one frame, img2img at high strength with seeds seed…seed+K-1; each candidate is a frame message with its seed.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 3,
        kind: 'edit-keyframe',
        params: { prompt: 'a watercolor painting', strength: 0.75, candidates: 2, seed: 7 },
        frames: [{ name: 'f0040.png', png: png('in0') }],
        subscribe: true,
      }),
      d({ type: 'accepted', id: 3, job: summary({ state: 'queued', kind: 'edit-keyframe', total: 2 }) }),
      d({ type: 'frame', job: JOB, index: 0, name: 'candidate-0-seed7.png', png: png('out0'), replay: false, seed: 7 }),
      d({ type: 'frame', job: JOB, index: 1, name: 'candidate-1-seed8.png', png: png('out1'), replay: false, seed: 8 }),
      d({
        type: 'done',
        job: JOB,
        outputs: { frames: 2, names: ['candidate-0-seed7.png', 'candidate-1-seed8.png'] },
        elapsed_s: 3.1,
      }),
    ],
  },
  {
    name: 'finetune',
    description:
      'Fine-tuning on a clip with one edited keyframe: progress reports iterations and loss; done names the adapter, usable as params.adapter of later stylize jobs.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 4,
        kind: 'finetune',
        params: { prompt: 'a watercolor painting', train_frames: 30, iters: 1000, adapter_name: 'shot12-watercolor' },
        frames: [
          { name: 'f0001.png', png: png('in0') },
          { name: 'f0002.png', png: png('in1') },
        ],
        edits: [{ frame: 0, png: png('out0') }],
        subscribe: true,
      }),
      d({ type: 'accepted', id: 4, job: summary({ state: 'queued', kind: 'finetune', total: 0 }) }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'training',
        fraction: 0.5,
        frames_done: 0,
        frames_total: 0,
        iteration: 500,
        iterations: 1000,
        loss: 0.0831,
      }),
      d({ type: 'done', job: JOB, outputs: { frames: 0, names: [], adapter: 'shot12-watercolor' }, elapsed_s: 312.4 }),
    ],
  },
  {
    name: 'deflicker',
    description:
      'Deflickering a processed clip: frames are the original clip, edits the processed version of every frame (paths from a local client); progress reports training steps and loss, then the frames as they are made.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 6,
        kind: 'deflicker',
        params: { working_size: 240, irt: false },
        frames: [{ path: '/home/ana/shot12/original/f0001.png' }, { path: '/home/ana/shot12/original/f0002.png' }],
        edits: [
          { frame: 0, path: '/home/ana/shot12/styled/f0001.png' },
          { frame: 1, path: '/home/ana/shot12/styled/f0002.png' },
        ],
        output_dir: '/home/ana/shot12/deflickered',
        subscribe: true,
      }),
      d({ type: 'accepted', id: 6, job: summary({ state: 'queued', kind: 'deflicker' }) }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'training',
        fraction: 0.41,
        frames_done: 0,
        frames_total: 2,
        iteration: 25,
        iterations: 50,
        loss: 0.0412,
        message: 'epoch 13/25',
      }),
      d({ type: 'frame', job: JOB, index: 0, name: 'f0001.png', png: png('out0'), replay: false }),
      d({ type: 'frame', job: JOB, index: 1, name: 'f0002.png', png: png('out1'), replay: false }),
      d({
        type: 'done',
        job: JOB,
        outputs: { frames: 2, names: ['f0001.png', 'f0002.png'], dir: '/home/ana/shot12/deflickered' },
        elapsed_s: 95.2,
      }),
    ],
  },
  {
    name: 'farm',
    description:
      'The whole method on a Slurm cluster, from a daemon started with `serve --slurm` (its welcome offers kind:farm): progress follows the Slurm stages, frames arrive as the stylize tasks write them, done when the assembly is.',
    steps: [
      hello,
      d({
        ...(welcome.message as Extract<ServerMessage, { type: 'welcome' }>),
        capabilities: [
          'kind:stylize',
          'kind:edit-keyframe',
          'kind:finetune',
          'kind:run',
          'kind:deflicker',
          'kind:farm',
          'attach',
          'noise',
        ],
      }),
      c({
        type: 'submit',
        id: 7,
        kind: 'farm',
        params: { prompt: 'a watercolor painting', iters: 1000, chunk: 25 },
        frames: [
          { name: 'f0001.png', png: png('in0') },
          { name: 'f0002.png', png: png('in1') },
        ],
        edits: [{ frame: 0, png: png('out0') }],
        subscribe: true,
      }),
      d({ type: 'accepted', id: 7, job: summary({ state: 'queued', kind: 'farm' }) }),
      d({
        type: 'progress',
        job: JOB,
        state: 'running',
        stage: 'stylizing',
        fraction: 0.62,
        frames_done: 0,
        frames_total: 2,
        message: 'Slurm: running, frames 1/2',
      }),
      d({ type: 'frame', job: JOB, index: 0, name: 'f0001.png', png: png('out0'), replay: false }),
      d({ type: 'frame', job: JOB, index: 1, name: 'f0002.png', png: png('out1'), replay: false }),
      d({ type: 'done', job: JOB, outputs: { frames: 2, names: ['f0001.png', 'f0002.png'] }, elapsed_s: 1843.7 }),
    ],
  },
  {
    name: 'cancel',
    description:
      'Cancel a running job: the request is answered ok, and the job ends with an error event of code E_CANCELLED (frames finished before stay available).',
    steps: [
      hello,
      welcome,
      c({ type: 'cancel', id: 5, job: JOB }),
      d({ type: 'ok', id: 5 }),
      d({ type: 'error', job: JOB, code: 'E_CANCELLED', message: 'the job was cancelled' }),
    ],
  },
  {
    name: 'attach',
    description:
      "A second client (or the same one after a reconnect) attaches to a job: the job's state, then the finished frames again (replay: true), then live events.",
    steps: [
      hello,
      welcome,
      c({ type: 'attach', id: 6, job: JOB, replay: true, from_index: 0 }),
      d({
        type: 'attached',
        id: 6,
        job: {
          ...summary({ state: 'running', name: 'shot 12', done: 1, fraction: 0.5 }),
          params: stylizeParams,
          inputs: ['f0001.png', 'f0002.png'],
          outputs: ['f0001.png', ''],
        },
      }),
      d({ type: 'frame', job: JOB, index: 0, name: 'f0001.png', png: png('out0'), replay: true }),
      d({ type: 'frame', job: JOB, index: 1, name: 'f0002.png', png: png('out1'), replay: false }),
      d({ type: 'done', job: JOB, outputs: { frames: 2, names: ['f0001.png', 'f0002.png'] }, elapsed_s: 7.49 }),
    ],
  },
  {
    name: 'jobs',
    description: 'List jobs (newest first, optionally by state), inspect one, detach from its events, delete it.',
    steps: [
      hello,
      welcome,
      c({ type: 'list_jobs', id: 7, limit: 10 }),
      d({ type: 'jobs', id: 7, jobs: [summary({ state: 'done', name: 'shot 12', done: 2, fraction: 1 })] }),
      c({ type: 'get_job', id: 8, job: JOB }),
      d({
        type: 'job',
        id: 8,
        job: {
          ...summary({ state: 'done', name: 'shot 12', done: 2, fraction: 1 }),
          params: stylizeParams,
          inputs: ['f0001.png', 'f0002.png'],
          outputs: ['f0001.png', 'f0002.png'],
        },
      }),
      c({ type: 'detach', id: 9, job: JOB }),
      d({ type: 'ok', id: 9 }),
      c({ type: 'delete_job', id: 10, job: JOB }),
      d({ type: 'ok', id: 10 }),
      c({ type: 'get_job', id: 11, job: 'j-20000101-000000-000000' }),
      d({
        type: 'error',
        id: 11,
        code: 'E_NOT_FOUND',
        message: 'no job "j-20000101-000000-000000"',
        details: { job: 'j-20000101-000000-000000' },
      }),
    ],
  },
  {
    name: 'models',
    description:
      'The models the daemon offers (its default first; a job picks another with params.model) and the adapters it has (fine-tuned by finetune/run jobs, or dropped in its adapters folder).',
    steps: [
      hello,
      welcome,
      c({ type: 'list_models', id: 11 }),
      d({
        type: 'models',
        id: 11,
        models: [
          {
            name: 'embedded-default',
            default: true,
            loaded: true,
            description:
              'tiny model with random weights built by vidprior (for tests; real use: serve --model <checkpoint, diffusers folder, ONNX folder or hub id>)',
          },
          {
            name: '/home/ana/models/watercolor-v2.safetensors',
            default: false,
            loaded: false,
            description: 'checkpoint, last used 2026-11-24T09:12:40.000Z [recent]',
          },
          {
            name: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
            default: false,
            loaded: false,
            description: 'Hugging Face cache (StableDiffusionPipeline) [hf-cache]',
          },
        ],
        adapters: [
          {
            name: 'shot12-watercolor',
            job: JOB,
            prompt: 'a watercolor painting',
            created_at: '2026-11-25T14:28:13.120Z',
            bytes: 3276800,
          },
        ],
      }),
    ],
  },
  {
    name: 'bad-requests',
    description: 'Errors answer the request that caused them (by id when it could be read); the connection stays open.',
    steps: [
      hello,
      welcome,
      c({
        type: 'submit',
        id: 12,
        kind: 'stylize',
        params: { prompt: 'x', strength: 1.5 },
        frames: [{ png: png('in0') }],
      }),
      d({
        type: 'error',
        id: 12,
        code: 'E_BAD_REQUEST',
        message: 'params.strength must be a number > 0 and ≤ 1, got number 1.5',
        details: { field: 'params.strength', value: 1.5 },
      }),
      c({ type: 'submit', id: 13, kind: 'stylize', params: { prompt: 'x' }, frames: [{ path: '/etc/passwd' }] }),
      d({
        type: 'error',
        id: 13,
        code: 'E_FORBIDDEN_PATH',
        message: 'frames[0].path "/etc/passwd" is outside the folders this daemon may read',
        details: { field: 'frames[0].path' },
      }),
      d(
        {
          type: 'error',
          code: 'E_PROTOCOL',
          message: 'message is not valid MessagePack (Unexpected end of MessagePack data)',
        },
        'answer to a message that could not be decoded: no id',
      ),
    ],
  },
];
