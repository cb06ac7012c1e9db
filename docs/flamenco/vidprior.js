// SPDX-License-Identifier: MIT
//
// vidprior as a Flamenco custom job type (a job compiler script for Flamenco Manager 3.x).
// UNTESTED ON FLAMENCO: written from Flamenco's job-type documentation (JOB_TYPE, compileJob(job),
// author.Task, author.Command("exec"), task.addCommand, task.addDependency, job.addTask, frameChunker) and
// checked only by test/docs/flamenco.test.ts, which runs compileJob() with stand-ins for Flamenco's globals.
// See docs/cluster.md.
//
// Install: copy this file to the `scripts/` folder next to `flamenco-manager` (create it) and restart the
// Manager. Workers need `vidprior` (or the path given in the `vidprior` setting) and every path below on
// shared storage, as with Slurm. Workers run task types `vidprior-gpu` (fine-tune, stylize) and `misc`/`ffmpeg`
// (the video): give the GPU machines `vidprior-gpu` in their worker configuration.
//
// The three stages of `vidprior farm slurm submit`:
//   1. fine-tune   vidprior finetune … --output <output_dir>/adapter.safetensors   (skipped with `adapter`)
//   2. stylize     one task per chunk of frames, each after the fine-tune:
//                  vidprior stylize … --frame-range=A-B --skip-existing   (frames byte-identical to `vidprior run`)
//   3. video       after every stylize task: Flamenco's frames-to-video (skipped when video_fps is 0)

const JOB_TYPE = {
    label: "vidprior: stylize a clip",
    description: "Fine-tune Stable Diffusion on the clip and its edited keyframes, then stylize every frame (vidprior)",
    settings: [
        { key: "input_frames", type: "string", subtype: "dir_path", required: true,
          description: "Folder of the clip's frames (PNG/JPEG), on storage every worker sees" },
        { key: "frames", type: "string", required: true,
          description: "Frame indices to stylize, 0-based, e.g. '0-119' for a clip of 120 frames" },
        { key: "chunk_size", type: "int32", default: 25, propargs: { min: 1 },
          description: "Frames per stylize task" },
        { key: "prompt", type: "string", required: true, description: "What the frames should look like" },
        { key: "negative_prompt", type: "string", default: "", description: "What to steer away from" },
        { key: "edits", type: "string", default: "",
          description: "Edited keyframes, ';'-separated <frame>=<path>, e.g. '0=/shared/edit0.png;60=/shared/edit60.png'" },
        { key: "adapter", type: "string", subtype: "file_path", default: "",
          description: "A ready adapter (.safetensors): no fine-tune task" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Where the stylized frames (and the adapter) go" },
        { key: "model", type: "string", default: "", description: "SD 1.x model (vidprior --model); empty: the default" },
        { key: "iters", type: "int32", default: 1000, description: "Fine-tune iterations" },
        { key: "train_frames", type: "int32", default: 30, description: "Frames sampled for the fine-tune" },
        { key: "steps", type: "int32", default: 50, description: "DDIM steps before strength" },
        { key: "strength", type: "float", default: 0.45, description: "Stylize strength (0.325 for people)" },
        { key: "guidance", type: "float", default: 7.5, description: "Classifier-free guidance scale" },
        { key: "seed", type: "int32", default: 0, description: "Seed of the fine-tune sampling and of the noise" },
        { key: "ep", type: "string", default: "auto", choices: ["auto", "cuda", "webgpu", "cpu"],
          description: "Execution provider on the workers" },
        { key: "video_fps", type: "float", default: 24, description: "Frame rate of a preview video (0: no video)" },
        { key: "vidprior", type: "string", default: "vidprior", visible: "web",
          description: "The vidprior command on the workers" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const outputDir = settings.output_dir;
    const framesDir = path.join(outputDir, "frames");
    const adapter = settings.adapter || path.join(outputDir, "adapter.safetensors");
    const common = [`--seed=${settings.seed}`, `--ep=${settings.ep}`];
    if (settings.model) common.push(`--model=${settings.model}`);

    // 1. The fine-tune, unless an adapter is given.
    let finetuneTask = null;
    if (!settings.adapter) {
        const edits = settings.edits.split(";").map((e) => e.trim()).filter((e) => e.length > 0);
        if (edits.length === 0) throw "give at least one edited keyframe in 'edits' (or a ready 'adapter')";
        finetuneTask = author.Task("vidprior-finetune", "vidprior-gpu");
        finetuneTask.addCommand(author.Command("exec", {
            exe: settings.vidprior,
            args: [
                "finetune",
                `--input=${settings.input_frames}`,
                ...edits.map((e) => `--edit=${e}`),
                `--prompt=${settings.prompt}`,
                `--iters=${settings.iters}`,
                `--frames=${settings.train_frames}`,
                ...common,
                `--output=${adapter}`,
            ],
        }));
        job.addTask(finetuneTask);
    }

    // 2. The stylize chunks, each after the fine-tune; a chunk redone after a failure skips its finished frames.
    const stylizeTasks = [];
    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        if (chunk.indexOf(",") >= 0) throw `'frames' must be one range like 0-119, got ${settings.frames}`;
        const range = chunk.indexOf("-") >= 0 ? chunk : `${chunk}-${chunk}`;
        const task = author.Task(`vidprior-stylize-${range}`, "vidprior-gpu");
        task.addCommand(author.Command("exec", {
            exe: settings.vidprior,
            args: [
                "stylize",
                `--input=${settings.input_frames}`,
                `--output=${framesDir}`,
                `--adapter=${adapter}`,
                `--prompt=${settings.prompt}`,
                `--negative-prompt=${settings.negative_prompt}`,
                `--strength=${settings.strength}`,
                `--steps=${settings.steps}`,
                `--guidance=${settings.guidance}`,
                ...common,
                `--frame-range=${range}`,
                "--skip-existing",
            ],
        }));
        if (finetuneTask) task.addDependency(finetuneTask);
        job.addTask(task);
        stylizeTasks.push(task);
    }

    // 3. A preview video once every frame is there.
    if (settings.video_fps > 0) {
        const video = author.Task("vidprior-video", "ffmpeg");
        video.addCommand(author.Command("frames-to-video", {
            exe: "ffmpeg",
            fps: settings.video_fps,
            inputGlob: path.join(framesDir, "*.png"),
            outputFile: path.join(outputDir, "stylized.mp4"),
            args: ["-c:v", "h264", "-crf", "18", "-pix_fmt", "yuv420p", "-y"],
        }));
        for (const t of stylizeTasks) video.addDependency(t);
        job.addTask(video);
    }
}
