/**
 * `vidprior tokenize [--model <dir>] <prompt..>`: prints the model's CLIP token ids of a prompt (BOS, content,
 * EOS, padding: 77 ids for SD 1.x) as a JSON array on stdout, and warns on stderr when the prompt was truncated.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError } from '../../src/errors.js';
import { ClipTokenizer } from '../../src/tokenizer/clip.js';
import { ensureDefaultModel } from '../../src/models/builder/default-model.js';
import { identifyModel, inspectRecipe } from '../../src/models/resolve/resolve.js';

interface TokenizeArgs {
  prompt: string[];
  model?: string;
  'model-config'?: string;
  tokens?: boolean;
}

/** The tokenizer of any model `--model` takes (a checkpoint's is found as its conversion would find it). */
async function tokenizerOf(model: string, modelConfig?: string): Promise<string> {
  if (existsSync(model) && statSync(model).isDirectory()) return tokenizerFolder(model);
  const ref = identifyModel(model);
  const recipe = await inspectRecipe(ref, { modelConfig });
  if (!recipe) return tokenizerFolder(ref.path);
  await recipe.close();
  return recipe.tokenizerDir;
}

/** The tokenizer folder of a model: `<dir>/tokenizer`, or `<dir>` itself when it holds vocab.json. */
export function tokenizerFolder(modelDir: string): string {
  const nested = join(modelDir, 'tokenizer');
  if (existsSync(join(nested, 'vocab.json'))) return nested;
  if (existsSync(join(modelDir, 'vocab.json'))) return modelDir;
  if (!existsSync(modelDir)) {
    throw new VidpriorError('E_MODEL_MISSING', `model folder not found: ${modelDir}`, { model: modelDir });
  }
  throw new VidpriorError('E_MODEL_MISSING', `tokenizer file missing: ${join(nested, 'vocab.json')}`, {
    file: join(nested, 'vocab.json'),
  });
}

export const tokenizeCommand: CommandModule<object, TokenizeArgs> = {
  command: 'tokenize <prompt..>',
  describe: 'Print the CLIP token ids of a prompt (77 for SD 1.x) as JSON',
  builder: (yargs) =>
    yargs
      .positional('prompt', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'the prompt (quote it, or give it as several words)',
      })
      .option('model', {
        type: 'string',
        describe:
          'an SD 1.x model (ONNX or diffusers folder, checkpoint, cached hub id) or a tokenizer/ folder; default: the embedded default model',
      })
      .option('model-config', {
        type: 'string',
        describe: 'a diffusers folder whose tokenizer a single-file checkpoint uses',
      })
      .option('tokens', {
        type: 'boolean',
        default: false,
        describe: 'also print the content tokens, as JSON, on a second line',
      })
      .example('$0 tokenize --model ./sd15-onnx "a watercolor fox"', 'prints [49406, 320, ...]') as never,
  handler: async (argv) => {
    let modelDir = argv.model;
    if (!modelDir) {
      modelDir = await ensureDefaultModel((dir) =>
        process.stderr.write(`vidprior: building the embedded default model in ${dir}\n`),
      );
      process.stderr.write(
        "vidprior: note: using the embedded default model's small byte-level vocabulary; give --model <SD 1.x folder> for the real CLIP ids\n",
      );
    }
    const folder = argv.model ? await tokenizerOf(argv.model, argv['model-config']) : tokenizerFolder(modelDir);
    const tokenizer = await ClipTokenizer.fromFolder(folder);
    const prompt = argv.prompt.map(String).join(' ');
    const encoded = tokenizer.encode(prompt);
    if (encoded.truncated) {
      process.stderr.write(
        `vidprior: warning: the prompt is longer than ${tokenizer.maxLength - 2} tokens; ` +
          `this part was dropped: ${JSON.stringify(encoded.removedText)}\n`,
      );
    }
    process.stdout.write(`${JSON.stringify([...encoded.ids])}\n`);
    if (argv.tokens) process.stdout.write(`${JSON.stringify(encoded.tokens)}\n`);
  },
};
