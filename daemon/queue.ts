/**
 * The job queue: one worker (one GPU), first in first out, every job persisted in the JobStore. After a
 * restart, jobs that were running or queued run again (running ones first, in creation order) and skip the
 * outputs they already finished. Events of each job go to its subscribers (websocket connections, the
 * watched-folder writer); nobody's disconnect affects a job.
 */
import { VidpriorError, asVidpriorError, type ErrorCode } from '../src/errors.js';
import {
  TERMINAL_STATES,
  type JobDetail,
  type JobEvent,
  type JobState,
  type JobSummary,
  type Progress,
} from '../protocol/messages.js';
import type { ExecutorContext, JobExecutor, ProgressUpdate } from './jobs/executor.js';
import type { JobRecord, JobStore, NewJob } from './jobs/store.js';
import type { ModelHost } from './jobs/model-host.js';
import { type QueueFacts, frameEvent, jobDetail, jobSummary, progressEvent, terminalEvent } from './jobs/views.js';
import { rm } from 'node:fs/promises';
import { writeToOutputDir } from './output-dir.js';
import type { PathPolicy } from './paths.js';

export type JobListener = (event: JobEvent) => void;
type Log = (line: string) => void;

/** Why a running job's signal was aborted. */
const CANCEL = 'cancel';
const SHUTDOWN = 'shutdown';

/** Deaths of the daemon while a job ran after which the job is failed (E_CRASHED) rather than resumed. */
export const MAX_CRASHES = 2;

/** Progress events are sent at most this often per job (stage changes and frames always go out). */
const PROGRESS_INTERVAL_MS = 100;

export class JobQueue {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly waiting: string[] = [];
  private readonly listeners = new Map<string, Set<JobListener>>();
  private readonly anyListeners = new Set<(job: JobRecord, event: JobEvent) => void>();
  private current: { id: string; abort: AbortController; why?: string } | null = null;
  private worker: Promise<void> | null = null;
  private stopping = false;
  /** When each running job last sent a progress event (for the throttle). */
  private lastProgress = new Map<string, number>();
  /** The last training iteration each job reported (for the job list). */
  private iterationsDone = new Map<string, number>();

  constructor(
    readonly store: JobStore,
    private readonly executors: ReadonlyMap<string, JobExecutor>,
    readonly model: ModelHost,
    private readonly log: Log = () => {},
    /** Where jobs' output_dir copies may go (checked at each write); none without it. */
    private readonly outputPaths?: PathPolicy,
    /** Bytes a job may need beyond the model (ExecutorContext.memoryLimit). */
    private readonly memoryLimit?: number,
  ) {}

  /** Loads the jobs on disk and starts the ones left unfinished by the last run. */
  async start(): Promise<void> {
    await this.store.init();
    const all = await this.store.loadAll(this.log);
    for (const job of all) this.jobs.set(job.spec.id, job);
    // A job the daemon died running twice is not resumed a third time: it may be what kills the daemon.
    for (const job of all.filter(
      (j) => j.status.state === 'running' && (j.status.unfinished_starts ?? 0) >= MAX_CRASHES,
    )) {
      this.log(
        `job ${job.spec.id} was running when the daemon died ${job.status.unfinished_starts} times: marking it failed`,
      );
      await this.finish(
        job,
        'failed',
        new VidpriorError(
          'E_CRASHED',
          `job ${job.spec.id} was running each of the ${job.status.unfinished_starts} times the daemon died (out of memory, or killed): it is not resumed again; submit it again, smaller (params.work_size, params.batch) if memory ran out`,
          { job: job.spec.id, starts: job.status.unfinished_starts },
        ),
      );
    }
    // Jobs that ended while nobody cleaned after them (the daemon died in between).
    for (const job of all.filter((j) => TERMINAL_STATES.includes(j.status.state))) await this.store.dropWorkFiles(job);
    const resume = all.filter((j) => j.status.state === 'running');
    const queued = all.filter((j) => j.status.state === 'queued');
    for (const job of [...resume, ...queued]) this.waiting.push(job.spec.id);
    if (resume.length)
      this.log(`resuming ${resume.length} interrupted job(s): ${resume.map((j) => j.spec.id).join(', ')}`);
    this.kick();
  }

  executor(kind: string): JobExecutor {
    const ex = this.executors.get(kind);
    if (!ex) throw new VidpriorError('E_BAD_REQUEST', `job kind ${JSON.stringify(kind)} is not known`, { kind });
    const why = ex.unavailable();
    if (why)
      throw new VidpriorError('E_BAD_REQUEST', `job kind "${kind}" is not available in this build yet: ${why}`, {
        kind,
      });
    return ex;
  }

  /** Kinds this build can run (for `welcome.capabilities`). */
  availableKinds(): string[] {
    return [...this.executors.values()].filter((e) => !e.unavailable()).map((e) => e.kind);
  }

  /**
   * Persists a new job and queues it; the job is durable once this resolves. `beforeStart` runs with the new
   * id before the job can emit anything (to subscribe without missing an event).
   */
  async submit(job: NewJob, beforeStart?: (id: string) => void): Promise<JobRecord> {
    if (this.stopping) throw new VidpriorError('E_BUSY', 'the daemon is shutting down');
    // An adapter named by a stylize/edit job must exist now (one a queued training job will make is not known yet).
    if (typeof job.params.adapter === 'string') await this.model.adapterPath(job.params.adapter);
    // So must a model named by the job (one of those list_models offers).
    await this.model.check(typeof job.params.model === 'string' ? job.params.model : undefined);
    for (const lora of (job.params.loras ?? []) as { name?: string }[])
      if (lora.name !== undefined) await this.model.adapterPath(lora.name);
    const record = await this.store.create(job);
    this.jobs.set(record.spec.id, record);
    beforeStart?.(record.spec.id);
    this.waiting.push(record.spec.id);
    this.kick();
    return record;
  }

  has(id: string): boolean {
    return this.jobs.has(id);
  }

  get(id: string): JobRecord {
    const job = this.jobs.get(id);
    if (!job) throw new VidpriorError('E_NOT_FOUND', `no job ${JSON.stringify(id)}`, { job: id });
    return job;
  }

  /** Newest first. */
  list(state?: JobState, limit = 100): JobRecord[] {
    return [...this.jobs.values()]
      .filter((j) => !state || j.status.state === state)
      .reverse()
      .slice(0, limit);
  }

  /** Cancels a queued job at once, a running one at its next step (`why` becomes its error message); a finished job is left as it is. */
  async cancel(id: string, why = 'the job was cancelled'): Promise<void> {
    const job = this.get(id);
    if (TERMINAL_STATES.includes(job.status.state)) return;
    if (this.current?.id === id) {
      this.current.why = why;
      this.current.abort.abort(CANCEL);
      return;
    }
    const at = this.waiting.indexOf(id);
    if (at >= 0) this.waiting.splice(at, 1);
    await this.finish(job, 'cancelled', new VidpriorError('E_CANCELLED', why));
  }

  /** Removes a finished job and its folder; a queued or running one must be cancelled first (E_BUSY). */
  async delete(id: string): Promise<void> {
    const job = this.get(id);
    if (!TERMINAL_STATES.includes(job.status.state)) {
      throw new VidpriorError('E_BUSY', `job ${id} is ${job.status.state}: cancel it before deleting it`, {
        job: id,
        state: job.status.state,
      });
    }
    this.jobs.delete(id);
    await rm(job.dir, { recursive: true, force: true });
  }

  subscribe(id: string, listener: JobListener): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.listeners.delete(id);
    };
  }

  /** Every event of every job (the watched folder follows its jobs this way). */
  onAnyEvent(listener: (job: JobRecord, event: JobEvent) => void): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  position(id: string): number | undefined {
    const i = this.waiting.indexOf(id);
    return i >= 0 ? i : undefined;
  }

  /** What the queue knows of a job beyond its record (for the wire views). */
  private facts(job: JobRecord): QueueFacts {
    const position = this.position(job.spec.id);
    const iterationsDone = this.iterationsDone.get(job.spec.id);
    return {
      ...(position !== undefined ? { position } : {}),
      ...(iterationsDone !== undefined ? { iterationsDone } : {}),
    };
  }

  summary(job: JobRecord): JobSummary {
    return jobSummary(job, this.facts(job));
  }

  detail(job: JobRecord): JobDetail {
    return jobDetail(job, this.facts(job));
  }

  /** The progress event that describes a job now (sent on attach and on state changes). */
  progressOf(job: JobRecord, update?: Partial<ProgressUpdate>): Progress {
    return progressEvent(job, this.facts(job), update);
  }

  /** Stops taking work; a running job is interrupted and stays `running` on disk, to resume on restart. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.waiting.length = 0;
    this.current?.abort.abort(SHUTDOWN);
    await this.worker;
  }

  // ---- the worker -----------------------------------------------------------------------------------

  private kick(): void {
    if (this.worker || this.stopping) return;
    this.worker = this.drain().finally(() => {
      this.worker = null;
      if (this.waiting.length && !this.stopping) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (!this.stopping) {
      const id = this.waiting.shift();
      if (!id) return;
      const job = this.jobs.get(id);
      if (!job || TERMINAL_STATES.includes(job.status.state)) continue;
      // Everyone still waiting moved up one place.
      for (const other of this.waiting) this.emit(this.jobs.get(other)!, this.progressOf(this.jobs.get(other)!));
      await this.runJob(job);
    }
  }

  private async runJob(job: JobRecord): Promise<void> {
    const abort = new AbortController();
    const started = Date.now();
    this.current = { id: job.spec.id, abort };
    job.status.state = 'running';
    job.status.stage = 'starting';
    job.status.started_at ??= new Date().toISOString();
    // Counted before anything runs, durably: if the daemon dies in this job, the next start knows.
    job.status.unfinished_starts = (job.status.unfinished_starts ?? 0) + 1;
    try {
      await this.store.saveStatus(job);
      this.emit(job, this.progressOf(job));
      const executor = this.executor(job.spec.kind);
      await this.model.select(typeof job.spec.params.model === 'string' ? job.spec.params.model : undefined);
      const result = await executor.run(this.contextFor(job, abort.signal));
      abort.signal.throwIfAborted();
      if (result.adapter) job.status.adapter = result.adapter;
      job.status.elapsed_s += (Date.now() - started) / 1000;
      await this.finish(job, 'done');
    } catch (err) {
      job.status.elapsed_s += (Date.now() - started) / 1000;
      if (abort.signal.aborted && abort.signal.reason === SHUTDOWN) {
        // Leave it `running` on disk: the next start resumes it. A clean stop is not a crash.
        job.status.unfinished_starts = Math.max(0, (job.status.unfinished_starts ?? 1) - 1);
        await this.store.saveStatus(job).catch(() => {});
      } else if (abort.signal.aborted && abort.signal.reason === CANCEL) {
        const why = this.current?.why ?? 'the job was cancelled';
        await this.finish(job, 'cancelled', new VidpriorError('E_CANCELLED', why));
      } else {
        const e = asVidpriorError(err);
        if (e.code === 'E_INTERNAL')
          this.log(`job ${job.spec.id} failed with a bug: ${(err as Error)?.stack ?? e.message}`);
        await this.finish(job, 'failed', e);
      }
    } finally {
      this.current = null;
      this.lastProgress.delete(job.spec.id);
    }
  }

  private contextFor(job: JobRecord, signal: AbortSignal): ExecutorContext {
    return {
      spec: job.spec,
      signal,
      model: this.model,
      adapterDir: this.store.adapterDir(job),
      ...(this.memoryLimit ? { memoryLimit: this.memoryLimit } : {}),
      checkpoint: job.status.checkpoint,
      progress: (update) => this.onProgress(job, update),
      emitFrame: async (index, png, extra) => {
        signal.throwIfAborted();
        await this.store.writeOutput(job, index, png);
        if (job.spec.output_dir)
          await writeToOutputDir(job.spec.output_dir, job.spec.outputs[index]!, png, this.outputPaths);
        job.status.fraction = Math.max(
          job.status.fraction,
          job.outputDone.filter(Boolean).length / Math.max(1, job.spec.outputs.length),
        );
        await this.store.saveStatus(job, false);
        this.emit(job, frameEvent(job, index, png, false, extra?.seed));
      },
      isDone: (index) => job.outputDone[index] === true,
      inputPath: (index) => this.store.inputPath(job, index),
      editPath: (index) => this.store.editPath(job, index),
      readNoise: () => this.store.readNoise(job),
      saveCheckpoint: async (data) => {
        job.status.checkpoint = data;
        await this.store.saveStatus(job);
      },
    };
  }

  private onProgress(job: JobRecord, update: ProgressUpdate): void {
    job.status.fraction = Math.min(1, Math.max(0, update.fraction));
    if (update.iteration !== undefined) this.iterationsDone.set(job.spec.id, update.iteration);
    const stageChanged = job.status.stage !== update.stage;
    job.status.stage = update.stage;
    const now = Date.now();
    const last = this.lastProgress.get(job.spec.id);
    if (!stageChanged && last !== undefined && now - last < PROGRESS_INTERVAL_MS) return;
    this.lastProgress.set(job.spec.id, now);
    this.emit(job, this.progressOf(job, update));
  }

  private async finish(job: JobRecord, state: 'done' | 'failed' | 'cancelled', error?: VidpriorError): Promise<void> {
    job.status.state = state;
    job.status.stage = state;
    job.status.finished_at = new Date().toISOString();
    if (state === 'done') job.status.fraction = 1;
    if (error)
      job.status.error = {
        code: error.code as ErrorCode,
        message: error.message,
        ...(error.details ? { details: error.details } : {}),
      };
    await this.store.saveStatus(job).catch(async (e: Error) => {
      // The client hears of the end either way; it must not run again after a restart (outcome.ts).
      this.log(`could not save the state of job ${job.spec.id}: ${e.message}`);
      await this.store.recordOutcome(job).then(
        () => this.log(`job ${job.spec.id}: its end was kept in its reserved outcome.json`),
        (e2: Error) =>
          this.log(`job ${job.spec.id}: its end could not be kept either (${e2.message}): it may run again`),
      );
    });
    // The last progress event says what the end says: every frame (or iteration) done, not the throttled
    // event before the last frame.
    if (state === 'done') this.emit(job, this.progressOf(job));
    // What only served to run the job (its input copies, checkpoints) goes now; the outputs stay for the retention time.
    await this.store.dropWorkFiles(job);
    this.emit(job, this.terminalEvent(job));
  }

  /** The event that ends a job's stream: done, or error with the job's code. */
  terminalEvent(job: JobRecord): JobEvent {
    return terminalEvent(job);
  }

  private emit(job: JobRecord, event: JobEvent): void {
    for (const l of this.anyListeners) safeCall(() => l(job, event), this.log);
    for (const l of this.listeners.get(job.spec.id) ?? []) safeCall(() => l(event), this.log);
  }
}

/** A listener's bug must not stop the job or the other listeners. */
function safeCall(fn: () => void, log: Log): void {
  try {
    fn();
  } catch (err) {
    log(`job event listener failed: ${(err as Error).stack ?? err}`);
  }
}
