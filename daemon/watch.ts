/**
 * Watched-folder mode: every sub-folder of the watched folder that gets a `job.json` becomes a job of the
 * queue. Its frames are the images of the folder (or of job.json's `input` sub-folder), or one video file. Beside the job.json the daemon writes `status.json` (rewritten atomically as the job moves), the
 * output frames in `out/`, and `error.json` when the job.json is bad or the job fails. The watcher never stops
 * for a bad folder: it writes the error file and goes on.
 *
 * Half-copied files are not picked up: job.json must be written last, chokidar reports it only once its size
 * has been stable (awaitWriteFinish), and the frames' sizes must be stable too before the job is read.
 * Paths in job.json are relative to the job folder and cannot leave it; job folders, their files and out/
 * must be plain folders and regular files (no symlinks, no FIFOs), and every write goes into the job folder
 * the job came from, pinned (watch-files.ts): a folder deleted mid-job cancels its job and is not made again.
 */
import { existsSync } from 'node:fs';
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { VidpriorError, asVidpriorError } from '../src/errors.js';
import { openFrameSource } from '../src/io/inputs.js';
import { checkPixels, type PixelLimits } from '../src/io/image-header.js';
import { probeVideo } from '../src/io/video.js';
import type { JobEvent } from '../protocol/messages.js';
import { TERMINAL_STATES } from '../protocol/messages.js';
import { JobKindSchema } from '../protocol/params.js';
import { array, int, object, optional, record, any, str } from '../protocol/schema.js';
import { type PinnedDir, readRegularFile } from '../src/io/pinned-dir.js';
import { intake } from './intake.js';
import {
  ERROR,
  JOB_FILE,
  OUT,
  STATUS,
  checkOutFolder,
  jobInputs,
  openJobFolder,
  readJobFile,
  waitStable,
  writeJsonIn,
} from './watch-files.js';
import { PathPolicy, realpathOrAncestor } from './paths.js';
import type { JobQueue } from './queue.js';
import type { JobRecord } from './jobs/store.js';
import { type VideoOrigin, videoOrigin, writeJobVideo } from './watch-video.js';

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

export interface WatchOptions extends PixelLimits {
  maxFrameBytes: number;
  maxFrames: number;
  /** How long a file's size must stay the same before it is read (ms). */
  stableMs?: number;
  log: (line: string) => void;
}

/** status.json is rewritten at most this often for progress (state changes always). */
const STATUS_INTERVAL_MS = 500;
/** A full look at the folder this often, in case the file-system events missed a job.json. */
const RESCAN_MS = 3000;

export class FolderWatcher {
  private readonly pending = new Set<string>();
  /** The identity (device:inode) of each job's folder when it was submitted: a folder made again is another. */
  private readonly folderIds = new Map<string, string>();
  /** Jobs whose folder is gone: nothing more is written for them. */
  private readonly gone = new Set<string>();
  private readonly lastStatus = new Map<string, number>();
  /** Jobs decoded from a video: their outputs are encoded into a video when done (watch-video.ts). */
  private readonly videos = new Map<string, VideoOrigin>();
  private readonly videosWritten = new Set<string>();
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
      // A job folder that is a link is not a job folder (it could point anywhere).
      followSymlinks: false,
      ignoreInitial: false,
      awaitWriteFinish: { stabilityThreshold: stableMs, pollInterval: Math.max(50, stableMs / 5) },
      // Our own files and outputs are not jobs.
      ignored: (p: string) =>
        p.split(sep).includes(OUT) || [STATUS, ERROR].includes(basename(p)) || basename(p).startsWith('.'),
    });
    w.watcher.on('add', (p) => {
      if (basename(p) === JOB_FILE && dirname(dirname(p)) === real) w.enqueue(dirname(p));
    });
    w.watcher.on('change', (p) => {
      if (basename(p) === JOB_FILE && dirname(dirname(p)) === real) w.enqueue(dirname(p));
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
      const job = await stat(join(folder, JOB_FILE)).catch(() => null);
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
    // A job folder that is a link (or no longer a folder) is not taken, and nothing is written into it.
    const here = await lstat(folder).catch(() => null);
    if (!here?.isDirectory()) {
      if (here?.isSymbolicLink()) this.opts.log(`watch: ${relative(this.dir, folder)} is a symbolic link: skipped`);
      return;
    }
    // A folder with a status file was submitted before (by this or an earlier run). One with only an error
    // file is tried again when its job.json is newer than the error (the user fixed it).
    if (existsSync(join(folder, STATUS))) return;
    if (existsSync(join(folder, ERROR))) {
      const [jobMtime, errMtime] = await Promise.all(
        [JOB_FILE, ERROR].map((f) =>
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
      await this.inFolder(folder, undefined, (dir) =>
        writeJsonIn(
          dir,
          ERROR,
          { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) },
          true,
        ),
      );
      this.opts.log(`watch: ${relative(this.dir, folder)}: [${e.code}] ${e.message}`);
    }
  }

  /** Runs `write` in the job folder pinned (see openJobFolder); false when the folder is gone or another one. */
  private async inFolder(folder: string, identity: string | undefined, write: (dir: PinnedDir) => Promise<void>) {
    const dir = await openJobFolder(folder, identity);
    if (!dir) return false;
    try {
      await write(dir);
      return true;
    } finally {
      await dir.close();
    }
  }

  private async submit(folder: string): Promise<JobRecord> {
    // 1. job.json (a regular file), checked like a submit; the folder it is in, as it is now.
    const job = JobFile.parse(await readJobFile(folder), 'job.json');
    const pinned = await openJobFolder(folder);
    if (!pinned) throw new VidpriorError('E_BAD_INPUT', `the job folder ${folder} is gone`, { path: folder });
    const identity = await pinned.identity();
    await pinned.close();
    await checkOutFolder(folder);

    // 2. The frames: a sub-folder, a video file, or the folder itself (its images, else its one video); plain
    //    files and folders only, settled (a copy still running is waited out).
    const { video, frames, editPaths } = await jobInputs(folder, job, relative(this.dir, folder));
    await waitStable([...(video ? [video] : frames), ...editPaths], this.opts.stableMs ?? 500);

    // 3. A video is decoded to PNG frames (src/io, ffmpeg) in a temporary folder, copied into the job by intake;
    //    its size and length are checked first, so a video bomb is not decoded.
    if (video) await this.checkVideo(video);
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
        pixels: this.opts,
        paths: allowed,
        origin: { via: 'watch', folder },
      });
      const record = await this.queue.submit(newJob);
      this.folderIds.set(record.spec.id, identity);
      const origin = video ? videoOrigin(job.kind, video, source?.fpsRational ?? source?.fps) : null;
      if (origin) this.videos.set(record.spec.id, origin);
      if (!(await this.inFolder(folder, identity, (dir) => this.writeStatus(dir, record))))
        await this.folderGone(record);
      return record;
    } finally {
      await source?.cleanup();
    }
  }

  private async checkVideo(video: string): Promise<void> {
    const info = await probeVideo(video);
    if (info.frameCount > this.opts.maxFrames)
      throw new VidpriorError(
        'E_TOO_LARGE',
        `${basename(video)} has ${info.frameCount} frames, more than the limit of ${this.opts.maxFrames}`,
        { field: 'job.json.input', limit: this.opts.maxFrames },
      );
    checkPixels(info, basename(video), this.opts);
  }

  /** After a restart: bring status.json and out/ of folders whose jobs moved on while nobody wrote them. */
  private async resync(): Promise<void> {
    for (const job of this.queue.list(undefined, Number.MAX_SAFE_INTEGER)) {
      if (job.spec.origin.via !== 'watch') continue;
      const dir = await this.jobFolder(job);
      if (!dir) {
        await this.folderGone(job);
        continue;
      }
      try {
        for (const [i, name] of job.spec.outputs.entries())
          if (job.outputDone[i]) await this.writeOutput(dir, job, name, await this.queue.store.readOutput(job, i));
        await this.writeStatus(dir, job);
        if (job.status.state === 'failed' || job.status.state === 'cancelled') await this.writeError(dir, job);
      } finally {
        await dir.close();
      }
    }
  }

  private onJobEvent(job: JobRecord, event: JobEvent): void {
    const origin = job.spec.origin;
    if (origin.via !== 'watch' || !isInsideDir(this.dir, origin.folder)) return;
    this.writes = this.writes
      .then(async () => {
        const dir = await this.jobFolder(job);
        if (!dir) return this.folderGone(job);
        try {
          if (event.type === 'frame') await this.writeOutput(dir, job, event.name, event.png);
          // On the first event that finds the job done (the last progress comes before `done`), before the status says so.
          if (job.status.state === 'done') await this.writeVideo(dir, job);
          if (event.type === 'error') await this.writeError(dir, job);
          const now = Date.now();
          const terminal = TERMINAL_STATES.includes(job.status.state);
          if (
            event.type !== 'progress' ||
            terminal ||
            now - (this.lastStatus.get(job.spec.id) ?? 0) > STATUS_INTERVAL_MS
          ) {
            this.lastStatus.set(job.spec.id, now);
            await this.writeStatus(dir, job);
          }
          if (terminal) this.lastStatus.delete(job.spec.id);
        } finally {
          await dir.close();
        }
      })
      .catch((err: unknown) =>
        this.opts.log(`watch: cannot write the status of ${origin.folder}: ${(err as Error).message}`),
      );
  }

  /**
   * The job's folder, pinned, while it is the folder the job came from (same device and inode). After a restart
   * that is known only from its status.json, which must name the job.
   */
  private async jobFolder(job: JobRecord): Promise<PinnedDir | null> {
    const id = job.spec.id;
    if (this.gone.has(id)) return null;
    const folder = (job.spec.origin as { folder: string }).folder;
    const known = this.folderIds.get(id);
    if (known !== undefined) return openJobFolder(folder, known);
    const dir = await openJobFolder(folder);
    if (!dir) return null;
    const status = await readRegularFile(join(folder, STATUS), STATUS, 1024 * 1024)
      .then((b) => JSON.parse(b.toString('utf8')) as { job?: unknown })
      .catch(() => null);
    if (status?.job !== id) {
      await dir.close();
      return null;
    }
    this.folderIds.set(id, await dir.identity());
    return dir;
  }

  /** The job's folder was deleted or replaced: nothing more is written for it, and an unfinished job is cancelled. */
  private async folderGone(job: JobRecord, why = 'was removed (or replaced)'): Promise<void> {
    const id = job.spec.id;
    if (this.gone.has(id)) return;
    this.gone.add(id);
    const folder = (job.spec.origin as { folder: string }).folder;
    this.opts.log(`watch: the folder of job ${id} (${folder}) ${why}: nothing more is written there`);
    if (!TERMINAL_STATES.includes(job.status.state))
      await this.queue.cancel(id, `its watched folder ${folder} ${why}; its outputs so far are in the data dir`);
  }

  /** An output frame into out/ (a plain folder of the job folder, made if missing). */
  private async writeOutput(dir: PinnedDir, job: JobRecord, name: string, png: Uint8Array): Promise<void> {
    let out: PinnedDir;
    try {
      out = await dir.subdir(OUT, true);
    } catch (err) {
      if (err instanceof VidpriorError && err.code === 'E_FORBIDDEN_PATH')
        return this.folderGone(job, `has an ${OUT} that is no longer a plain folder`);
      throw err;
    }
    try {
      await out.writeFile(name, png, false);
    } finally {
      await out.close();
    }
  }

  /** A job decoded from a video: its outputs as a video in out/ too (a failure is logged, the PNGs stay). */
  private async writeVideo(dir: PinnedDir, job: JobRecord): Promise<void> {
    const origin = this.videos.get(job.spec.id);
    if (!origin || this.videosWritten.has(job.spec.id)) return;
    this.videosWritten.add(job.spec.id);
    const out = await dir.subdir(OUT, true);
    try {
      await writeJobVideo(job, origin, out);
      this.opts.log(`watch: job ${job.spec.id}: wrote ${OUT}/${origin.name}`);
    } catch (err) {
      this.opts.log(`watch: job ${job.spec.id}: cannot make ${OUT}/${origin.name}: ${(err as Error).message}`);
    } finally {
      await out.close();
    }
  }

  private async writeStatus(dir: PinnedDir, job: JobRecord): Promise<void> {
    const s = this.queue.summary(job);
    await writeJsonIn(dir, STATUS, {
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
      ...(this.videos.has(s.id) ? { video: `${OUT}/${this.videos.get(s.id)!.name}` } : {}),
    });
  }

  private async writeError(dir: PinnedDir, job: JobRecord): Promise<void> {
    const e = job.status.error;
    if (!e) return;
    await writeJsonIn(dir, ERROR, { job: job.spec.id, code: e.code, message: e.message });
  }
}

function isInsideDir(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith('..');
}
