/**
 * How `models pull` talks to the hub: the endpoint (HF_ENDPOINT) and token (HF_TOKEN or huggingface_hub's
 * token file) handed to @huggingface/hub, and the library's errors turned into vidprior's: a repo or revision
 * that does not exist is E_NOT_FOUND naming it, a gated or private repo without a usable token is E_AUTH
 * saying to set HF_TOKEN, an unreachable hub is E_DOWNLOAD. The fetch the library is given records the hub's
 * `X-Error-Code` header (the library's errors drop it) and notices a range request answered in full.
 */
import { existsSync, readFileSync } from 'node:fs';
import { HubApiError } from '@huggingface/hub';
import { VidpriorError } from '../../errors.js';

export interface HubOptions {
  /** e.g. https://huggingface.co (HF_ENDPOINT). */
  endpoint: string;
  /** HF_TOKEN; else read from `tokenPath` when that file exists. */
  token?: string;
  tokenPath?: string;
  /** The revision asked for (named when the hub has no such revision). */
  revision: string;
  signal?: AbortSignal;
}

export class HubConnection {
  readonly endpoint: string;
  readonly token: string | undefined;
  /** Set when a request for the rest of a file got the whole file (HTTP 200 to a Range request). */
  rangeIgnored = false;
  private lastErrorCode: string | null = null;

  constructor(
    readonly repo: string,
    private readonly opts: HubOptions,
  ) {
    this.endpoint = opts.endpoint.replace(/\/+$/, '');
    this.token =
      opts.token ??
      (opts.tokenPath && existsSync(opts.tokenPath)
        ? readFileSync(opts.tokenPath, 'utf8').trim() || undefined
        : undefined);
    if (this.token && !this.token.startsWith('hf_')) {
      throw new VidpriorError('E_AUTH', 'HF_TOKEN is not a Hugging Face access token (those start with "hf_")');
    }
  }

  /** The library's credentials argument. */
  get credentials(): { accessToken: `hf_${string}` } | Record<string, never> {
    return this.token ? { accessToken: this.token as `hf_${string}` } : {};
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const range = new Headers(init?.headers).get('range');
    const res = await globalThis.fetch(input, { ...init, signal: this.opts.signal });
    this.lastErrorCode = res.ok ? null : res.headers.get('x-error-code');
    if (range && /^bytes=[1-9]/.test(range) && res.status === 200) {
      this.rangeIgnored = true;
      await res.body?.cancel();
      throw new VidpriorError('E_DOWNLOAD', 'the server ignored the range request');
    }
    return res;
  };

  /** A short reason for a network failure (fetch's own message is only "fetch failed"). */
  describe(err: unknown): string {
    const e = err as { message?: string; cause?: { code?: string; message?: string } };
    return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  }

  /** Runs a library call; its failures become VidpriorErrors that say what to do. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.translate(err, what);
    }
  }

  private translate(err: unknown, what: string): VidpriorError {
    if (err instanceof VidpriorError) return err;
    if (this.opts.signal?.aborted) return new VidpriorError('E_CANCELLED', 'the pull was cancelled');
    const repo = this.repo;
    const tokenHint = this.token
      ? 'the token (HF_TOKEN) has no access to it: check that its account accepted the terms on the model page'
      : 'set HF_TOKEN to an access token of an account that may read it';
    if (err instanceof HubApiError) {
      const code = this.lastErrorCode;
      const status = err.statusCode;
      if (code === 'GatedRepo' || (status === 403 && code !== 'RepoNotFound'))
        return new VidpriorError('E_AUTH', `${repo} is gated on ${this.endpoint}: ${tokenHint}`, { repo, status });
      if (code === 'RepoNotFound' || (status === 404 && !code && what === 'info'))
        return new VidpriorError(
          'E_NOT_FOUND',
          `no model ${repo} on ${this.endpoint}${this.token ? '' : ' (if it is private, set HF_TOKEN)'}`,
          { repo, status },
        );
      if (code === 'RevisionNotFound')
        return new VidpriorError('E_NOT_FOUND', `${repo} has no revision ${this.opts.revision}`, { repo, status });
      if (code === 'EntryNotFound' || status === 404)
        return new VidpriorError('E_NOT_FOUND', `${repo}: ${what} was not found on ${this.endpoint}`, { repo, status });
      if (status === 401)
        return new VidpriorError('E_AUTH', `${this.endpoint} refused to serve ${repo} (401): ${tokenHint}`, {
          repo,
          status,
        });
      return new VidpriorError('E_DOWNLOAD', `${repo}: ${what}: the hub answered ${status} (${err.message})`, {
        repo,
        status,
      });
    }
    return new VidpriorError(
      'E_DOWNLOAD',
      `cannot reach ${this.endpoint} for ${repo} (${this.describe(err)}); set HF_HUB_OFFLINE=1 to use only what is cached`,
      { repo },
      { cause: err },
    );
  }
}
