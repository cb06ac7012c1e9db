/**
 * The jobs folder of the daemon's data dir: create a job (inputs copied in, spec written), load every job
 * back after a restart, write outputs and state atomically. See types.ts for the layout.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VidpriorError } from '../../src/errors.js';
import { JOB_ID, TERMINAL_STATES } from '../../protocol/messages.js';
import { writeFileAtomic, writeJsonAtomic } from '../../src/io/atomic-write.js';
import { readRegularFile } from '../../src/io/pinned-dir.js';
import { readOutcome, recordOutcome, reserveOutcome } from './outcome.js';
import { SPEC_VERSION, type JobSpec, type JobStatus } from './types.js';

/** A job as the daemon holds it in memory: its spec, its status and which outputs exist. */
export interface JobRecord {
  readonly dir: string;
  readonly spec: JobSpec;
  status: JobStatus;
  /** outputDone[i]: output frame i is on disk. */
  outputDone: boolean[];
}

export type FrameData = { bytes: Uint8Array } | { path: string };

export interface NewJob {
  kind: JobSpec['kind'];
  params: Record<string, unknown>;
  name?: string;
  /** Frames (already checked to be images of one size): bytes, or a checked file to copy in. */
  inputs: { name: string; data: FrameData; ext: string }[];
  edits: { frame: number; data: FrameData; ext: string }[];
  noise?: { dims: number[]; bytes: Uint8Array };
  width: number;
  height: number;
  outputs: string[];
  output_dir?: string;
  origin: JobSpec['origin'];
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

async function frameBytes(data: FrameData): Promise<Uint8Array> {
  if ('bytes' in data) return data.bytes;
  // Checked at intake; read again here as a regular file, not through a link swapped in since.
  return readRegularFile(data.path, data.path, Number.MAX_SAFE_INTEGER);
}

/**
 * `j-YYYYMMDD-HHMMSS-` and 64 random bits in hex: readable, unique by its random tail (create also refuses an
 * existing folder). Queue order is by `created_at`, not by id.
 */
export function newJobId(now = new Date()): string {
  const d = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1, 2)}${pad(now.getUTCDate(), 2)}`;
  const t = `${pad(now.getUTCHours(), 2)}${pad(now.getUTCMinutes(), 2)}${pad(now.getUTCSeconds(), 2)}`;
  return `j-${d}-${t}-${randomBytes(8).toString('hex')}`;
}

/** A file-system failure as E_IO, saying what was being done (a full disk in plain words). */
function ioError(what: string, err: unknown): VidpriorError {
  if (err instanceof VidpriorError) return err;
  const e = err as NodeJS.ErrnoException;
  const why =
    e.code === 'ENOSPC' || e.code === 'EDQUOT'
      ? `the disk is full (${e.code})`
      : e.code === 'EROFS'
        ? 'the file system is read-only (EROFS)'
        : (e.code ?? e.message);
  return new VidpriorError('E_IO', `${what}: ${why}`, e.path ? { path: e.path } : undefined, { cause: err });
}

export class JobStore {
  readonly jobsDir: string;
  readonly adaptersDir: string;

  private readonly newId: () => string;
  /** The last step of creating jobs, one at a time: `created_at` (the queue's order) follows the order of commits. */
  private commits: Promise<unknown> = Promise.resolve();
  private lastCreated = 0;

  constructor(
    readonly dataDir: string,
    options: { newId?: () => string } = {},
  ) {
    this.jobsDir = join(dataDir, 'jobs');
    this.adaptersDir = join(dataDir, 'adapters');
    this.newId = options.newId ?? (() => newJobId());
  }

  async init(): Promise<void> {
    await mkdir(this.jobsDir, { recursive: true });
    await mkdir(this.adaptersDir, { recursive: true });
  }

  /**
   * Writes a new job folder (a new one: an id whose folder exists is drawn again). The spec is written last: a
   * folder without spec.json is an aborted create. File-system failures are E_IO (a full disk says so).
   */
  async create(job: NewJob): Promise<JobRecord> {
    let id = '';
    let dir = '';
    for (let attempt = 0; !dir; attempt++) {
      id = this.newId();
      try {
        await mkdir(join(this.jobsDir, id));
        dir = join(this.jobsDir, id);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8)
          throw ioError('cannot store the job', err);
      }
    }
    try {
      const record = await this.write(id, dir, job);
      const commit = this.commits.then(() => this.commit(record));
      this.commits = commit.catch(() => {});
      return await commit;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw ioError('cannot store the job', err);
    }
  }

  /** Makes the job durable: its creation time (strictly after the last job's), state, then spec. */
  private async commit(record: JobRecord): Promise<JobRecord> {
    this.lastCreated = Math.max(Date.now(), this.lastCreated + 1);
    record.spec.created_at = new Date(this.lastCreated).toISOString();
    await this.saveStatus(record);
    await writeJsonAtomic(join(record.dir, 'spec.json'), record.spec);
    return record;
  }

  private async write(id: string, dir: string, job: NewJob): Promise<JobRecord> {
    await reserveOutcome(dir);
    await mkdir(join(dir, 'inputs'), { recursive: true });
    await mkdir(join(dir, 'outputs'), { recursive: true });
    await mkdir(join(dir, 'adapters'), { recursive: true });
    // One frame at a time: path frames are read here, so a long clip is never in memory at once.
    const inputs: JobSpec['inputs'] = [];
    for (const [i, f] of job.inputs.entries()) {
      const file = `inputs/${pad(i, 5)}.${f.ext}`;
      await writeFileAtomic(join(dir, file), await frameBytes(f.data));
      inputs.push({ name: f.name, file });
    }
    const edits: JobSpec['edits'] = [];
    for (const [i, e] of job.edits.entries()) {
      const file = `edits/${pad(i, 2)}.${e.ext}`;
      await writeFileAtomic(join(dir, file), await frameBytes(e.data));
      edits.push({ frame: e.frame, file });
    }
    let noise: JobSpec['noise'];
    if (job.noise) {
      await writeFileAtomic(join(dir, 'noise.bin'), job.noise.bytes);
      noise = { dims: job.noise.dims, file: 'noise.bin' };
    }
    const spec: JobSpec = {
      version: SPEC_VERSION,
      id,
      kind: job.kind,
      params: job.params,
      ...(job.name ? { name: job.name } : {}),
      created_at: new Date().toISOString(),
      inputs,
      edits,
      ...(noise ? { noise } : {}),
      width: job.width,
      height: job.height,
      outputs: job.outputs,
      ...(job.output_dir ? { output_dir: job.output_dir } : {}),
      origin: job.origin,
    };
    const status: JobStatus = { state: 'queued', stage: 'queued', fraction: 0, elapsed_s: 0 };
    return { dir, spec, status, outputDone: job.outputs.map(() => false) };
  }

  /** Every job on disk, oldest first (by created_at). Folders that cannot be read are skipped and reported to `warn`. */
  async loadAll(warn: (message: string) => void): Promise<JobRecord[]> {
    const names = (await readdir(this.jobsDir)).filter((n) => JOB_ID.test(n));
    const jobs: JobRecord[] = [];
    for (const name of names) {
      const dir = join(this.jobsDir, name);
      try {
        if (!existsSync(join(dir, 'spec.json'))) continue; // created half-way when the daemon died: nothing was accepted
        const spec = JSON.parse(await readFile(join(dir, 'spec.json'), 'utf8')) as JobSpec;
        let status = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as JobStatus;
        // An end that could not be saved in state.json (a full disk) was kept in outcome.json.
        const outcome = TERMINAL_STATES.includes(status.state) ? null : await readOutcome(dir);
        if (outcome) status = { ...status, ...outcome, stage: outcome.state };
        const outputDone = await Promise.all(
          spec.outputs.map((n) =>
            stat(join(dir, 'outputs', n)).then(
              () => true,
              () => false,
            ),
          ),
        );
        jobs.push({ dir, spec, status, outputDone });
      } catch (err) {
        warn(`skipping job folder ${dir}: ${(err as Error).message}`);
      }
    }
    return jobs.sort(
      (a, b) => a.spec.created_at.localeCompare(b.spec.created_at) || a.spec.id.localeCompare(b.spec.id),
    );
  }

  async saveStatus(job: JobRecord, durable = true): Promise<void> {
    try {
      await writeJsonAtomic(join(job.dir, 'state.json'), job.status, durable);
    } catch (err) {
      throw ioError(`cannot save the state of job ${job.spec.id}`, err);
    }
  }

  /** Keeps a job's end in the space reserved for it (when saveStatus failed: the disk is full). */
  async recordOutcome(job: JobRecord): Promise<void> {
    await recordOutcome(job.dir, job.status);
  }

  outputPath(job: JobRecord, index: number): string {
    const name = job.spec.outputs[index];
    if (name === undefined) throw new VidpriorError('E_INTERNAL', `job ${job.spec.id} has no output ${index}`);
    return join(job.dir, 'outputs', name);
  }

  /** Writes output `index` durably: once this returns, a restart will not redo the frame. */
  async writeOutput(job: JobRecord, index: number, png: Uint8Array): Promise<void> {
    try {
      await writeFileAtomic(this.outputPath(job, index), png);
    } catch (err) {
      throw ioError(`cannot write output ${job.spec.outputs[index]} of job ${job.spec.id}`, err);
    }
    job.outputDone[index] = true;
  }

  async readOutput(job: JobRecord, index: number): Promise<Uint8Array> {
    return readFile(this.outputPath(job, index));
  }

  inputPath(job: JobRecord, index: number): string {
    const input = job.spec.inputs[index];
    if (!input) throw new VidpriorError('E_INTERNAL', `job ${job.spec.id} has no input ${index}`);
    return join(job.dir, input.file);
  }

  editPath(job: JobRecord, index: number): string {
    const edit = job.spec.edits[index];
    if (!edit) throw new VidpriorError('E_INTERNAL', `job ${job.spec.id} has no edit ${index}`);
    return join(job.dir, edit.file);
  }

  async readNoise(job: JobRecord): Promise<Float32Array | undefined> {
    if (!job.spec.noise) return undefined;
    const bytes = await readFile(join(job.dir, job.spec.noise.file));
    // Copy into an aligned buffer; the file is little-endian float32 like every platform Node runs on.
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  }

  /**
   * Removes what only served to run a job that has ended: its copies of the inputs, edits and noise, and its
   * training checkpoints (adapters/; published adapters live in the data dir's adapters/). Failures are ignored:
   * the retention sweep removes the folder later anyway.
   */
  async dropWorkFiles(job: JobRecord): Promise<void> {
    for (const part of ['inputs', 'edits', 'noise.bin', 'adapters'])
      await rm(join(job.dir, part), { recursive: true, force: true }).catch(() => {});
  }

  adapterDir(job: JobRecord): string {
    return join(job.dir, 'adapters');
  }
}
