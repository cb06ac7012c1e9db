/**
 * The runtime's worker thread: the only place onnxruntime-node is loaded. It owns every ORT session and every
 * GPU-resident tensor; the main thread (index.ts) posts requests and gets plain tensors or GpuTensor handles
 * back. Requests are handled one at a time, in order: ORT's create/run block this thread, never the main one.
 */
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { VidpriorError } from '../errors.js';
import type { DType, Tensor } from '../tensor.js';
import type {
  CreateResult,
  InitResult,
  Request,
  Response,
  RunResult,
  WireFeed,
  WireSessionOptions,
} from './messages.js';
import { toWireError } from './messages.js';
import { toOrtSessionOptions } from './ort-options.js';
import { decideProvider, shortOrtMessage } from './providers.js';
import type { ExecutionProvider, ExecutionProviderChoice, GpuTensor, IoMeta } from './types.js';
import { isGpuTensor } from './types.js';

type OrtSession = ort.InferenceSession;
type OrtTensor = ort.Tensor;

interface SessionEntry {
  session: OrtSession;
  label: string;
  gpuOutputs: boolean;
}

const HOST_TYPES: ReadonlySet<string> = new Set<DType>(['float32', 'float16', 'int64', 'int32', 'uint8', 'bool']);

const state = {
  ep: 'cpu' as ExecutionProvider,
  cpuThreads: 0,
  sessions: new Map<number, SessionEntry>(),
  gpuTensors: new Map<number, OrtTensor>(),
  /** Identity sessions that copy tensors of each element type between the host and the GPU. */
  readers: new Map<string, OrtSession>(),
  nextSession: 1,
  nextTensor: 1,
};

ort.env.logLevel = 'fatal';

// 1. Serialise requests: each one waits for the previous one to finish.
let queue: Promise<void> = Promise.resolve();
parentPort!.on('message', (req: Request) => {
  queue = queue.then(() => handle(req));
});

async function handle(req: Request): Promise<void> {
  let response: Response;
  const transfer: ArrayBuffer[] = [];
  try {
    const result = await dispatch(req, transfer);
    response = { id: req.id, ok: true, result };
  } catch (err) {
    response = { id: req.id, ok: false, error: toWireError(err) };
    transfer.length = 0;
  }
  parentPort!.postMessage(response, transfer);
}

async function dispatch(req: Request, transfer: ArrayBuffer[]): Promise<unknown> {
  switch (req.op) {
    case 'init':
      state.nextTensor = req.tensorIdBase + 1;
      return init(req.ep, req.cpuThreads);
    case 'create':
      return createSession(req.model, req.options);
    case 'run':
      return runSession(req.session, req.feeds, req.outputNames, transfer);
    case 'release':
      return releaseSession(req.session);
    case 'read':
      return readTensor(req.tensor, transfer);
    case 'upload':
      return uploadTensor(req.tensor, transfer);
    case 'dispose':
      return disposeTensors(req.tensors);
    case 'close':
      return closeAll();
  }
}

// ---- provider choice ---------------------------------------------------------------------------------

async function init(choice: ExecutionProviderChoice, cpuThreads: number): Promise<InitResult> {
  state.cpuThreads = cpuThreads;
  const decision = await decideProvider({ choice, probe: probeProvider });
  state.ep = decision.ep;
  return { decision };
}

/** Creates and runs a float32 Identity session on `ep`; keeps it as the float32 reader when it works. */
async function probeProvider(ep: ExecutionProvider): Promise<void> {
  const { identityModel } = await import('./identity.js');
  const session = await ort.InferenceSession.create(identityModel('float32'), {
    executionProviders: [ep === 'cuda' ? { name: 'cuda', deviceId: 0 } : ep],
    logSeverityLevel: 4,
  });
  const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
  const y = out.y as OrtTensor;
  if (y.location !== 'cpu' || (y.data as Float32Array)[1] !== 2)
    throw new VidpriorError('E_EP_UNAVAILABLE', `the ${ep} probe session returned wrong data`);
  state.readers.set(`${ep}:float32`, session);
}

// ---- sessions ----------------------------------------------------------------------------------------

async function createSession(model: string | Uint8Array, options: WireSessionOptions): Promise<CreateResult> {
  const label = options.label;
  const ortOptions: ort.InferenceSession.SessionOptions = toOrtSessionOptions(options, state.ep, state.cpuThreads);
  if (options.externalData?.length) {
    (ortOptions as { externalData?: unknown }).externalData = options.externalData.map((e) => ({
      path: e.path,
      data: typeof e.data === 'string' ? readExternal(e.data, label) : e.data,
    }));
  }
  let session: OrtSession;
  try {
    session =
      typeof model === 'string'
        ? await ort.InferenceSession.create(model, ortOptions)
        : await ort.InferenceSession.create(model, ortOptions);
  } catch (err) {
    throw createError(err, label, typeof model === 'string' ? model : null);
  }
  const inputs = session.inputMetadata.map(toIoMeta);
  const outputs = session.outputMetadata.map(toIoMeta);
  const keep = options.keepOutputsOnGpu;
  if (Array.isArray(keep)) {
    const unknown = keep.filter((n) => !outputs.some((o) => o.name === n));
    if (unknown.length > 0) {
      await session.release();
      throw new VidpriorError(
        'E_MODEL_INPUT',
        `${label}: keepOutputsOnGpu names ${unknown.map((n) => `'${n}'`).join(', ')}, ` +
          `which the model does not output (outputs: ${outputs.map((o) => o.name).join(', ')})`,
        { label, outputs: unknown },
      );
    }
  }
  const id = state.nextSession++;
  state.sessions.set(id, { session, label, gpuOutputs: Boolean(ortOptions.preferredOutputLocation) });
  return { session: id, inputs, outputs, ep: state.ep };
}

function readExternal(path: string, label: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_MISSING',
      `${label}: cannot read external data file ${path}: ${(err as Error).message}`,
      { path },
    );
  }
}

/** A create() failure: unreadable/invalid models are E_ONNX naming the file, the rest E_RUNTIME. */
function createError(err: unknown, label: string, file: string | null): VidpriorError {
  const message = shortOrtMessage(err instanceof Error ? err.message : String(err));
  const where = file ?? 'the given bytes';
  if (
    /protobuf parsing failed|INVALID_PROTOBUF|INVALID_GRAPH|No opset import|ModelProto|Unsupported model IR version|opset .* is under development/i.test(
      message,
    )
  ) {
    return new VidpriorError('E_ONNX', `${label}: cannot load the model from ${where}: ${message}`, { label, file });
  }
  if (/external data|\.onnx_data|No such file|doesn't exist/i.test(message) && file) {
    return new VidpriorError('E_MODEL_MISSING', `${label}: cannot load the model from ${file}: ${message}`, {
      label,
      file,
    });
  }
  return new VidpriorError(
    'E_RUNTIME',
    `${label}: ONNX Runtime could not create the session on ${state.ep}: ${message}`,
    { label, file, ep: state.ep },
  );
}

function toIoMeta(m: ort.InferenceSession.ValueMetadata): IoMeta {
  if (!m.isTensor) return { name: m.name, type: 'non-tensor', dims: [] };
  return { name: m.name, type: m.type, dims: m.shape.map((d) => (typeof d === 'number' ? d : String(d))) };
}

function sessionEntry(id: number): SessionEntry {
  const entry = state.sessions.get(id);
  if (!entry) throw new VidpriorError('E_BAD_REQUEST', `session ${id} was released`, { session: id });
  return entry;
}

async function runSession(
  id: number,
  feeds: Record<string, WireFeed>,
  outputNames: string[] | undefined,
  transfer: ArrayBuffer[],
): Promise<RunResult> {
  const { session, label, gpuOutputs } = sessionEntry(id);
  const ortFeeds: Record<string, OrtTensor> = {};
  for (const [name, feed] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(feed, label, name);
  // onnxruntime-node 1.30 with preferredOutputLocation set fails a run that asks for a subset of the outputs
  // ("Output count mismatch"), and on large graphs has been seen to return them under shifted names. Such
  // sessions always run every output; the ones not asked for are dropped (GPU ones disposed) below.
  const subset =
    outputNames && !(gpuOutputs && outputNames.length < session.outputNames.length) ? outputNames : undefined;
  let outputs: ort.InferenceSession.ReturnType;
  try {
    outputs = subset ? await session.run(ortFeeds, subset) : await session.run(ortFeeds);
  } catch (err) {
    throw new VidpriorError(
      'E_RUNTIME',
      `${label}: ONNX Runtime failed to run: ${shortOrtMessage((err as Error).message ?? String(err))}`,
      { label },
    );
  }
  const wanted = outputNames ? new Set(outputNames) : null;
  const result: RunResult = {};
  for (const [name, value] of Object.entries(outputs)) {
    if (wanted && !wanted.has(name)) {
      (value as OrtTensor).dispose();
      continue;
    }
    result[name] = fromOrtTensor(value as OrtTensor, label, name, transfer);
  }
  return result;
}

async function releaseSession(id: number): Promise<void> {
  const entry = state.sessions.get(id);
  if (!entry) return;
  state.sessions.delete(id);
  await entry.session.release();
}

// ---- tensors -----------------------------------------------------------------------------------------

function toOrtTensor(feed: WireFeed, label: string, name: string): OrtTensor {
  if (isGpuTensor(feed)) {
    const t = state.gpuTensors.get(feed.id);
    if (!t)
      throw new VidpriorError(
        'E_BAD_REQUEST',
        `${label}: input '${name}' is GPU tensor ${feed.id}, which was disposed or belongs to another runtime`,
        { label, input: name },
      );
    return t;
  }
  // ORT takes float16 as Uint16Array bits and bool as Uint8Array, exactly vidprior's Tensor layout.
  return new ort.Tensor(feed.type, feed.data as never, feed.dims as number[]);
}

function fromOrtTensor(t: OrtTensor, label: string, name: string, transfer: ArrayBuffer[]): Tensor | GpuTensor {
  if (!HOST_TYPES.has(t.type)) {
    t.dispose();
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${label}: output '${name}' has element type ${t.type}, which vidprior does not handle`,
      { label, output: name },
    );
  }
  const type = t.type as DType;
  if (t.location === 'gpu-buffer') {
    const id = state.nextTensor++;
    state.gpuTensors.set(id, t);
    return { kind: 'gpu', id, type, dims: [...t.dims] };
  }
  let data = t.data as Tensor['data'];
  // Hand the buffer over without a copy when the array owns all of it; copy a view into a larger buffer.
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice() as Tensor['data'];
  if (data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer)) transfer.push(data.buffer);
  return { type, dims: [...t.dims], data };
}

async function readTensor(id: number, transfer: ArrayBuffer[]): Promise<Tensor> {
  const t = state.gpuTensors.get(id);
  if (!t)
    throw new VidpriorError('E_BAD_REQUEST', `GPU tensor ${id} was disposed or belongs to another runtime`, {
      tensor: id,
    });
  const reader = await copierTo('cpu', t.type);
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await reader.run({ x: t });
  } catch (err) {
    throw new VidpriorError(
      'E_RUNTIME',
      `reading GPU tensor ${id} back failed: ${shortOrtMessage((err as Error).message)}`,
      { tensor: id },
    );
  }
  return fromOrtTensor(out.y as OrtTensor, 'read', 'y', transfer) as Tensor;
}

/**
 * The Identity session on the runtime's provider whose output lives at `location`: 'cpu' downloads a GPU
 * tensor of `type`, 'gpu-buffer' uploads a host one.
 */
async function copierTo(location: 'cpu' | 'gpu-buffer', type: string): Promise<OrtSession> {
  const key = location === 'cpu' ? `${state.ep}:${type}` : `${state.ep}:${type}:${location}`;
  let copier = state.readers.get(key);
  if (!copier) {
    const { identityModel } = await import('./identity.js');
    copier = await ort.InferenceSession.create(identityModel(type as DType), {
      executionProviders: [state.ep],
      preferredOutputLocation: location,
      logSeverityLevel: 4,
    });
    state.readers.set(key, copier);
  }
  return copier;
}

/** Copies a host tensor into GPU memory (WebGPU) and returns its handle. */
async function uploadTensor(t: Tensor, transfer: ArrayBuffer[]): Promise<Tensor | GpuTensor> {
  const copier = await copierTo('gpu-buffer', t.type);
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await copier.run({ x: toOrtTensor(t, 'upload', 'x') });
  } catch (err) {
    throw new VidpriorError(
      'E_RUNTIME',
      `uploading a ${t.type} tensor to the GPU failed: ${shortOrtMessage((err as Error).message)}`,
    );
  }
  return fromOrtTensor(out.y as OrtTensor, 'upload', 'y', transfer);
}

function disposeTensors(ids: number[]): void {
  for (const id of ids) {
    const t = state.gpuTensors.get(id);
    if (!t) continue;
    state.gpuTensors.delete(id);
    t.dispose();
  }
}

async function closeAll(): Promise<void> {
  disposeTensors([...state.gpuTensors.keys()]);
  for (const id of [...state.sessions.keys()]) await releaseSession(id);
  for (const reader of state.readers.values()) await reader.release();
  state.readers.clear();
}
