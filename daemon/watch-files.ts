/**
 * What the watcher reads from and writes to a job folder, kept inside it. A watched folder is anyone's to fill,
 * so: a job folder, its job.json, frames, video, edits and out/ must be what they look like — folders and
 * regular files, no symbolic links (a link could point anywhere), no FIFOs (reading one blocks) — and every
 * write goes into the folder opened and pinned (src/io/pinned-dir.ts), the very folder the job came from: one
 * deleted or replaced since is never written to (and never made again).
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { VidpriorError } from '../src/errors.js';
import { isImageFile, naturalCompare } from '../src/io/frames.js';
import { PinnedDir, readRegularFile } from '../src/io/pinned-dir.js';
import { isVideoFile } from '../src/io/video.js';
import { PathPolicy } from './paths.js';

export const JOB_FILE = 'job.json';
export const STATUS = 'status.json';
export const ERROR = 'error.json';
export const OUT = 'out';

/** job.json is small: a few parameters and paths. */
const MAX_JOB_FILE_BYTES = 1024 * 1024;

/** job.json parsed: a regular file (no link, no FIFO); a syntax error is reported without the file's text. */
export async function readJobFile(folder: string): Promise<unknown> {
  const text = (await readRegularFile(join(folder, JOB_FILE), JOB_FILE, MAX_JOB_FILE_BYTES)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 quotes the text around the error ("Unexpected token 'x', "…" is not valid JSON"): leave that out.
    const why = (err as Error).message.replace(/"(?:[^"\\]|\\.)*"(?:\.\.\.)?/g, '…').slice(0, 200);
    throw new VidpriorError('E_BAD_INPUT', `job.json is not valid JSON: ${why}`, { file: JOB_FILE });
  }
}

/**
 * What `path` (relative to `folder`, already checked to stay inside it) is: E_FORBIDDEN_PATH when it or a folder
 * on the way is a symbolic link, E_BAD_INPUT when it is missing.
 */
export async function plainEntry(folder: string, path: string, field: string): Promise<'file' | 'folder' | 'other'> {
  const target = resolve(folder, path);
  let cur = folder;
  for (const part of relative(folder, target).split(sep).filter(Boolean)) {
    cur = join(cur, part);
    const shown = JSON.stringify(relative(folder, cur));
    const st = await lstat(cur).catch(() => null);
    if (!st) throw new VidpriorError('E_BAD_INPUT', `${field}: ${shown} does not exist`, { field });
    if (st.isSymbolicLink())
      throw new VidpriorError(
        'E_FORBIDDEN_PATH',
        `${field}: ${shown} is a symbolic link; a watched job folder takes plain files and folders only`,
        { field },
      );
    if (cur === target) return st.isFile() ? 'file' : st.isDirectory() ? 'folder' : 'other';
    if (!st.isDirectory()) throw new VidpriorError('E_BAD_INPUT', `${field}: ${shown} is not a folder`, { field });
  }
  return 'folder'; // the job folder itself
}

/** The names in `dir` that `want` picks, each a regular file; a picked link or FIFO is refused, naming it. */
export async function plainFiles(folder: string, dir: string, want: (name: string) => boolean): Promise<string[]> {
  const names: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || !want(e.name)) continue;
    const shown = JSON.stringify(relative(folder, join(dir, e.name)));
    if (e.isSymbolicLink())
      throw new VidpriorError(
        'E_FORBIDDEN_PATH',
        `${shown} is a symbolic link; a watched job folder takes plain files only`,
        { path: relative(folder, join(dir, e.name)) },
      );
    if (!e.isFile())
      throw new VidpriorError('E_BAD_INPUT', `${shown} is not a regular file`, {
        path: relative(folder, join(dir, e.name)),
      });
    names.push(e.name);
  }
  return names;
}

/** out/ is made by the daemon; one that exists must be a plain folder. */
export async function checkOutFolder(folder: string): Promise<void> {
  const st = await lstat(join(folder, OUT)).catch(() => null);
  if (st && (st.isSymbolicLink() || !st.isDirectory()))
    throw new VidpriorError(
      'E_FORBIDDEN_PATH',
      `${OUT} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: the outputs go into a plain ${OUT}/ folder the daemon makes (remove it)`,
      { path: OUT },
    );
}

/**
 * The job folder, opened for writing, when it is still the folder at `folder` (not a link) and, if `identity` is
 * given, the same folder as then (not deleted and made again); otherwise null.
 */
export async function openJobFolder(folder: string, identity?: string): Promise<PinnedDir | null> {
  let dir: PinnedDir;
  try {
    dir = await PinnedDir.open(folder);
  } catch {
    return null;
  }
  if (dir.realPath !== folder || (identity !== undefined && (await dir.identity()) !== identity)) {
    await dir.close();
    return null;
  }
  return dir;
}

/** Writes `value` as JSON into the pinned folder. */
export async function writeJsonIn(dir: PinnedDir, name: string, value: unknown, durable = false): Promise<void> {
  await dir.writeFile(name, `${JSON.stringify(value, null, 2)}\n`, durable);
}

/** What a job.json asks for, as far as its inputs go. */
export interface JobInputsSpec {
  input?: string;
  edits?: { frame: number; path: string }[];
}

/**
 * The inputs of a job folder: its video, or its frames in natural order (edits left out), and the edits' paths;
 * all inside the folder, plain files and folders only. `shown` names the folder in messages.
 */
export async function jobInputs(
  folder: string,
  job: JobInputsSpec,
  shown: string,
): Promise<{ video: string | null; frames: string[]; editPaths: Set<string> }> {
  const paths = new PathPolicy([folder], folder);
  const inputPath = job.input ? paths.check(job.input, 'job.json.input') : folder;
  const kind = job.input ? await plainEntry(folder, job.input, 'job.json.input') : 'folder';
  if (kind === 'other')
    throw new VidpriorError('E_BAD_INPUT', `job.json.input ${JSON.stringify(job.input)} is not a regular file`, {
      field: 'job.json.input',
    });
  const editPaths = new Set<string>();
  for (const [i, e] of (job.edits ?? []).entries()) {
    const field = `job.json.edits[${i}].path`;
    editPaths.add(paths.check(e.path, field));
    if ((await plainEntry(folder, e.path, field)) !== 'file')
      throw new VidpriorError('E_BAD_INPUT', `${field} ${JSON.stringify(e.path)} is not a regular file`, { field });
  }
  if (kind === 'file') return { video: inputPath, frames: [], editPaths };
  const names = (await plainFiles(folder, inputPath, (n) => isImageFile(n) || isVideoFile(n))).sort(naturalCompare);
  const frames = names
    .filter(isImageFile)
    .map((n) => join(inputPath, n))
    .filter((p) => !editPaths.has(p));
  const videos = names.filter(isVideoFile);
  if (frames.length > 0) return { video: null, frames, editPaths };
  if (videos.length === 1) return { video: join(inputPath, videos[0]!), frames, editPaths };
  const where = join(shown, relative(folder, inputPath)) || '.';
  throw new VidpriorError(
    'E_BAD_INPUT',
    `no frames (.png, .jpg) ${videos.length > 1 ? `and ${videos.length} videos (name one in "input")` : 'and no video'} in ${where}`,
    { field: 'job.json.input' },
  );
}

/** Waits until no file of `paths` changes size or mtime over `ms` (a copy still running is waited out). */
export async function waitStable(paths: Iterable<string>, ms: number): Promise<void> {
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
