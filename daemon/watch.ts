/**
 * Watched-folder mode: every sub-folder of the watched folder that gets a `job.json` becomes a job of the
 * queue. Its frames are the images of the folder (or of job.json's `input` sub-folder), or one video file. Beside the job.json the daemon writes `status.json` (rewritten atomically as the job moves), the
 * output frames in `out/`, and `error.json` when the job.json is bad or the job fails. The watcher never stops
 * for a bad folder: it writes the error file and goes on.
 *
 * Half-copied files are not picked up: job.json must be written last, chokidar reports it only once its size
 * has been stable (awaitWriteFinish), and the frames' sizes must be stable too before the job is read.
 * Paths in job.json are relative to the job folder and cannot leave it (resolved, symlinks followed).
 */
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { VidpriorError, asVidpriorError } from '../src/errors.js';
import { isImageFile, naturalCompare } from '../src/io/frames.js';
import { openFrameSource } from '../src/io/inputs.js';
import { isVideoFile } from '../src/io/video.js';
import type { JobEvent } from '../protocol/messages.js';
import { TERMINAL_STATES } from '../protocol/messages.js';
import { JobKindSchema } from '../protocol/params.js';
import { array, int, object, optional, record, any, str } from '../protocol/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/io/atomic-write.js';
import { intake } from './intake.js';
import { PathPolicy, realpathOrAncestor } from './paths.js';
import type { JobQueue } from './queue.js';
import type { JobRecord } from './jobs/store.js';

/** job.json: the parameters of a `submit`, with paths relative to the job folder. */
const JobFile = object({
  kind: JobKindSchema,
  params: record(any()),
  /** A sub-folder of frames (default: the images of the job folder itself). */
  input: optional(str({ min: 1, max: 4096 })),
  // Keyframe edits (finetune, run: intake allows 64) or every processed frame (deflicker).
  edits: optional(
    array(object({ frame: int({ min: 0, max: 1_000_000 }), path: str({ min: 1, max: 4096 }) }), { max: 100_000 }),
  ),
  name: optional(str({ max: 200 })),
});

export interface WatchOptions {
  maxFrameBytes: number;
  maxFrames: number;
  /** How long a file's size must stay the same before it is read (ms). */
  stableMs?: number;
  log: (line: string) => void;
}

const STATUS = 'status.json';
const ERROR = 'error.json';
const OUT = 'out';
/** status.json is rewritten at most this often for progress (state changes always). */
const STATUS_INTERVAL_MS = 500;
/** A full look at the folder this often, in case the file-system events missed a job.json. */
const RESCAN_MS = 3000;

export class FolderWatcher {
  private readonly pending = new Set<string>();
  private readonly lastStatus = new Map<string, number>();
  private unsubscribe: () => void = () => {};
  private rescanTimer: NodeJS.Timeout | null = null;
  /** Job folders are read one at a time, in the order they became ready. */
  private chain: Promise<void> = Promise.resolve();
  /** Status and output writes, in event order (apart from `chain`: a folder still being copied must not hold them up). */
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly queue: JobQueue,
    private readonly opts: WatchOptions,
    private watcher: FSWatcher | null = null,
  ) {}

  static async start(dir: string, queue: JobQueue, opts: WatchOptions): Promise<FolderWatcher> {
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory())
      throw new VidpriorError('E_BAD_REQUEST', `watched folder ${dir} does not exist or is not a folder`, {
        path: dir,
      });
    const real = realpathOrAncestor(dir);
    const w = new FolderWatcher(real, queue, opts);
    w.unsubscribe = queue.onAnyEvent((job, event) => w.onJobEvent(job, event));
    const stableMs = opts.stableMs ?? 500;
    w.watcher = chokidar.watch(real, {
      depth: 1,
      ignoreInitial: false,
      awaitWriteFinish: { stabilityThreshold: stableMs, pollInterval: Math.max(50, stableMs / 5) },
      // Our own files and outputs are not jobs.
      ignored: (p: string) =>
        p.split(sep).includes(OUT) || [STATUS, ERROR].includes(basename(p)) || basename(p).startsWith('.'),
    });
    w.watcher.on('add', (p) => {
      if (basename(p) === 'job.json' && dirname(dirname(p)) === real) w.enqueue(dirname(p));
    });
    w.watcher.on('change', (p) => {
      if (basename(p) === 'job.json' && dirname(dirname(p)) === real) w.enqueue(dirname(p));
    });
    w.watcher.on('error', (err) => opts.log(`watcher error in ${real}: ${(err as Error).message}`));
    await new Promise<void>((resolve) => w.watcher!.once('ready', () => resolve()));
    await w.resync();
    w.rescanTimer = setInterval(() => void w.rescan(), RESCAN_MS);
    w.rescanTimer.unref();
    opts.log(`watching ${real} for job folders`);
    return w;
  }

  /** Enqueues folders whose job.json is settled but which have neither status nor error yet. */
  private async rescan(): Promise<void> {
    const entries = await readdir(this.dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const folder = join(this.dir, e.name);
      const job = await stat(join(folder, 'job.json')).catch(() => null);
      if (!job || Date.now() - job.mtimeMs < (this.opts.stableMs ?? 500)) continue;
      if (existsSync(join(folder, STATUS)) || existsSync(join(folder, ERROR))) continue;
      this.enqueue(folder);
    }
  }

  /** Resolves once every folder seen so far has been handled (tests wait on it). */
  async idle(): Promise<void> {
    let last: [Promise<void>, Promise<void>];
    do {
      last = [this.chain, this.writes];
      await Promise.all(last);
    } while (last[0] !== this.chain || last[1] !== this.writes);
  }

  async close(): Promise<void> {
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.unsubscribe();
    await this.watcher?.close();
    await this.idle();
  }

  private enqueue(folder: string): void {
    if (this.pending.has(folder)) return;
    this.pending.add(folder);
    this.chain = this.chain
      .then(() => this.handle(folder))
      .catch((err: unknown) => {
        this.opts.log(`watch: ${folder}: ${(err as Error).message}`);
      })
      .finally(() => this.pending.delete(folder));
  }

  private async handle(folder: string): Promise<void> {
    // A folder with a status file was submitted before (by this or an earlier run). One with only an error
    // file is tried again when its job.json is newer than the error (the user fixed it).
    if (existsSync(join(folder, STATUS))) return;
    if (existsSync(join(folder, ERROR))) {
      const [jobMtime, errMtime] = await Promise.all(
        ['job.json', ERROR].map((f) =>
          stat(join(folder, f)).then(
            (s) => s.mtimeMs,
            () => 0,
          ),
        ),
      );
      if (jobMtime! <= errMtime!) return;
      await rm(join(folder, ERROR), { force: true });
    }
    try {
      const record = await this.submit(folder);
      this.opts.log(`watch: ${relative(this.dir, folder)} → job ${record.spec.id}`);
    } catch (err) {
      const e = asVidpriorError(err);
      await writeJsonAtomic(join(folder, ERROR), {
        code: e.code,
        message: e.message,
        ...(e.details ? { details: e.details } : {}),
      });
      this.opts.log(`watch: ${relative(this.dir, folder)}: [${e.code}] ${e.message}`);
    }
  }

  private async submit(folder: string): Promise<JobRecord> {
    // 1. job.json, checked like a submit.
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(join(folder, 'job.json'), 'utf8'));
    } catch (err) {
      throw new VidpriorError('E_BAD_INPUT', `job.json is not valid JSON: ${(err as Error).message}`, {
        file: 'job.json',
      });
    }
    const job = JobFile.parse(raw, 'job.json');
    const paths = new PathPolicy([folder], folder);

    // 2. The frames: a sub-folder, a video file, or the folder itself (its images, else its one video).
    const inputPath = job.input ? paths.check(job.input, 'job.json.input') : folder;
    const st = await stat(inputPath).catch(() => null);
    if (!st)
      throw new VidpriorError('E_BAD_INPUT', `job.json.input ${JSON.stringify(job.input)} does not exist`, {
        field: 'job.json.input',
      });
    const editPaths = new Set((job.edits ?? []).map((e, i) => paths.check(e.path, `job.json.edits[${i}].path`)));
    let video: string | null = st.isDirectory() ? null : inputPath;
    let frames: string[] = [];
    if (st.isDirectory()) {
      const names = (await readdir(inputPath)).filter((n) => !n.startsWith('.')).sort(naturalCompare);
      frames = names
        .filter(isImageFile)
        .map((n) => join(inputPath, n))
        .filter((p) => !editPaths.has(p));
      const videos = names.filter(isVideoFile);
      if (frames.length === 0 && videos.length === 1) video = join(inputPath, videos[0]!);
      else if (frames.length === 0) {
        throw new VidpriorError(
          'E_BAD_INPUT',
          `no frames (.png, .jpg) ${videos.length > 1 ? `and ${videos.length} videos (name one in "input")` : 'and no video'} in ${relative(this.dir, inputPath) || '.'}`,
          { field: 'job.json.input' },
        );
      }
    }
    await waitStable([...(video ? [video] : frames), ...editPaths], this.opts.stableMs ?? 500);

    // 3. A video is decoded to PNG frames (src/io, ffmpeg) in a temporary folder, copied into the job by intake.
    const source = video ? await openFrameSource(video) : null;
    try {
      const frameInputs = source
        ? source.frames.map((f) => ({ name: f.name, path: f.path }))
        : frames.map((path) => ({ path }));
      const request = {
        kind: job.kind,
        params: job.params,
        name: job.name ?? basename(folder),
        frames: frameInputs,
        edits: (job.edits ?? []).map((e) => ({ frame: e.frame, path: e.path })),
      };
      // 4. The same intake as a websocket submit, with paths confined to the job folder (and the decoded frames).
      const allowed = new PathPolicy(
        [folder, ...(source?.frames.length ? [dirname(source.frames[0]!.path)] : [])],
        folder,
      );
      const newJob = await intake(this.queue.executor(job.kind), request, {
        maxFrameBytes: this.opts.maxFrameBytes,
        maxFrames: this.opts.maxFrames,
        paths: allowed,
        origin: { via: 'watch', folder },
      });
      const record = await this.queue.submit(newJob);
      await this.writeStatus(record);
      return record;
    } finally {
      await source?.cleanup();
    }
  }

  /** After a restart: bring status.json and out/ of folders whose jobs moved on while nobody wrote them. */
  private async resync(): Promise<void> {
    for (const job of this.queue.list(undefined, Number.MAX_SAFE_INTEGER)) {
      const origin = job.spec.origin;
      if (origin.via !== 'watch' || !existsSync(origin.folder)) continue;
      for (const [i, name] of job.spec.outputs.entries()) {
        if (job.outputDone[i] && !existsSync(join(origin.folder, OUT, name))) {
          await writeFileAtomic(join(origin.folder, OUT, name), await this.queue.store.readOutput(job, i), false);
        }
      }
      await this.writeStatus(job);
      if (job.status.state === 'failed' || job.status.state === 'cancelled') await this.writeError(job);
    }
  }

  private onJobEvent(job: JobRecord, event: JobEvent): void {
    const origin = job.spec.origin;
    if (origin.via !== 'watch' || !isInsideDir(this.dir, origin.folder)) return;
    this.writes = this.writes
      .then(async () => {
        if (event.type === 'frame') {
          await writeFileAtomic(join(origin.folder, OUT, event.name), event.png, false);
        }
        if (event.type === 'error') await this.writeError(job);
        const now = Date.now();
        const terminal = TERMINAL_STATES.includes(job.status.state);
        if (
          event.type !== 'progress' ||
          terminal ||
          now - (this.lastStatus.get(job.spec.id) ?? 0) > STATUS_INTERVAL_MS
        ) {
          this.lastStatus.set(job.spec.id, now);
          await this.writeStatus(job);
        }
        if (terminal) this.lastStatus.delete(job.spec.id);
      })
      .catch((err: unknown) =>
        this.opts.log(`watch: cannot write the status of ${origin.folder}: ${(err as Error).message}`),
      );
  }

  private async writeStatus(job: JobRecord): Promise<void> {
    const folder = (job.spec.origin as { folder: string }).folder;
    const s = this.queue.summary(job);
    await writeJsonAtomic(
      join(folder, STATUS),
      {
        job: s.id,
        kind: s.kind,
        state: s.state,
        stage: job.status.stage,
        fraction: s.fraction,
        frames_done: s.frames_done,
        frames_total: s.frames_total,
        outputs: OUT,
        updated_at: new Date().toISOString(),
        ...(s.error ? { error: s.error } : {}),
        ...(job.status.adapter ? { adapter: job.status.adapter } : {}),
      },
      false,
    );
  }

  private async writeError(job: JobRecord): Promise<void> {
    const e = job.status.error;
    if (!e) return;
    await writeJsonAtomic(
      join((job.spec.origin as { folder: string }).folder, ERROR),
      { job: job.spec.id, code: e.code, message: e.message },
      false,
    );
  }
}

function isInsideDir(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith('..');
}

/** Waits until no file of `paths` changes size or mtime over `ms` (a copy still running is waited out). */
async function waitStable(paths: Iterable<string>, ms: number): Promise<void> {
  const list = [...paths];
  const snapshot = async () =>
    (
      await Promise.all(
        list.map((p) =>
          stat(p).then(
            (s) => `${s.size}:${s.mtimeMs}`,
            () => 'missing',
          ),
        ),
      )
    ).join('|');
  let before = await snapshot();
  for (let tries = 0; tries < 120; tries++) {
    await new Promise((r) => setTimeout(r, ms));
    const after = await snapshot();
    if (after === before) return;
    before = after;
  }
  throw new VidpriorError('E_BAD_INPUT', 'the frames kept changing for a minute: is a copy still running?');
}
