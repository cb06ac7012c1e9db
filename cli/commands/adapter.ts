/**
 * `vidprior adapter convert --to kohya|peft <in> <out>`: a LoRA file between kohya's layout (A1111, ComfyUI)
 * and peft's (diffusers, vidprior's own adapters), so the per-video adapter loads in other tools as any LoRA
 * and theirs load here (src/models/lora/convert.ts). Tensors keep their bytes; only keys and metadata change.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { VidpriorError } from '../../src/errors.js';
import { writeFileAtomic } from '../../src/io/atomic-write.js';
import { type LoraLayout, convertLora } from '../../src/models/lora/convert.js';
import { parseLora } from '../../src/models/lora/lora-file.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/training/safetensors.js';
import { makeReporter } from './output.js';

interface ConvertArgs {
  input: string;
  output: string;
  to: LoraLayout;
  overwrite: boolean;
  json: boolean;
}

const convert: CommandModule<object, ConvertArgs> = {
  command: 'convert <input> <output>',
  describe: 'Rewrite a LoRA file in kohya layout (A1111, ComfyUI) or peft layout (diffusers, vidprior)',
  builder: (yargs) =>
    yargs
      .positional('input', { type: 'string', demandOption: true, describe: 'a LoRA .safetensors file' })
      .positional('output', { type: 'string', demandOption: true, describe: 'the .safetensors file to write' })
      .option('to', {
        type: 'string',
        choices: ['kohya', 'peft'],
        demandOption: true,
        describe: 'the key layout to write',
      })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace the output if it exists' })
      .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' })
      .example(
        '$0 adapter convert --to kohya clip.safetensors clip-kohya.safetensors',
        "vidprior's per-video adapter for A1111 / ComfyUI",
      ) as never,
  handler: async (argv) => {
    const report = makeReporter(argv.json);
    const input = resolve(argv.input);
    const output = resolve(argv.output);
    if (input === output)
      throw new VidpriorError('E_BAD_REQUEST', 'the output must be another file than the input', { output });
    if (existsSync(output) && !argv.overwrite) {
      throw new VidpriorError('E_BAD_REQUEST', `${output} already exists (give --overwrite to replace it)`, {
        output,
      });
    }
    const bytes = await readFile(input).catch((err: NodeJS.ErrnoException) => {
      throw new VidpriorError(
        err.code === 'ENOENT' ? 'E_NOT_FOUND' : 'E_IO',
        `cannot read ${input}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`,
        { file: input },
      );
    });
    const file = decodeSafetensors(bytes, input);
    const from = parseLora(file, input).layout;
    const converted = convertLora(file, argv.to, input);
    await writeFileAtomic(output, encodeSafetensors(converted.tensors, converted.metadata));
    const layers = parseLora(converted, output).entries.length;
    report.result(
      { input, output, from, to: argv.to, layers, tensors: converted.tensors.size },
      `wrote ${output}: ${layers} LoRA layers, ${from} → ${argv.to} layout`,
    );
  },
};

export const adapterCommand: CommandModule<object, object> = {
  command: 'adapter <command>',
  describe: 'Work with LoRA adapter files',
  builder: (yargs) => yargs.command(convert).demandCommand(1, 'Give an adapter command: convert.') as never,
  handler: () => {},
};
