/**
 * Running the real CLI (`node dist/cli/main.js`) from tests: asynchronously when the daemon it talks to lives in
 * the test's own process (a blocking spawn would starve it), synchronously otherwise; and the checks every CLI
 * test makes of its output.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export const CLI = resolve('dist/cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a child process; resolves when it exits (code -1 when a signal ended it). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** The CLI, blocking this process until it exits or `timeoutMs` passes (then code -1). */
export function runCliSync(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 300_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `--json` output: one JSON object per line. */
export function jsonLines(s: string): Record<string, unknown>[] {
  return s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A user mistake: exit code 2, one `vidprior: error [CODE]: …` line last on stderr matching `text`, no stack. */
export function assertUserError(r: CliResult, code: string, text: RegExp): void {
  const last = r.stderr.trim().split('\n').pop()!;
  assert.equal(r.code, 2, r.stderr);
  assert.match(last, new RegExp(`^vidprior: error \\[${code}\\]: `));
  assert.match(last, text);
  assert.ok(!/^\s+at /m.test(r.stderr), `no stack trace expected:\n${r.stderr}`);
}
