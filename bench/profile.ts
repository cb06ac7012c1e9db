/**
 * ORT's profile (Chrome trace JSON, written by a session made with `profilePrefix`) summarised as where the
 * time goes: total per op type and per kernel program, with shares, largest first.
 *
 * On WebGPU with timestamp queries, ORT adds one "Api" event per GPU dispatch, named
 * `<node>&<op type>&<program>` with its GPU duration: that is the GPU's own time, and what is summarised.
 * Without them (CPU provider, or a device without timestamp queries) the per-node "Node" events
 * (`<node>_kernel_time`, op in args.op_name) are used: CPU-side time, which on a GPU provider is only the
 * time to record the dispatches.
 */

export interface ProfileEntry {
  name: string;
  ms: number;
  /** Fraction of the total, 3 digits. */
  share: number;
  count: number;
}

export interface ProfileSummary {
  source: 'gpu-timestamps' | 'cpu-node-times';
  totalMs: number;
  byOp: ProfileEntry[];
  byKernel: ProfileEntry[];
}

interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string };
}

function top(groups: Map<string, { us: number; count: number }>, total: number, n: number): ProfileEntry[] {
  return [...groups.entries()]
    .sort((a, b) => b[1].us - a[1].us)
    .slice(0, n)
    .map(([name, g]) => ({
      name,
      ms: Math.round(g.us) / 1000,
      share: total > 0 ? Math.round((g.us / total) * 1000) / 1000 : 0,
      count: g.count,
    }));
}

/** Summarises a profile's events (the parsed JSON array); `n` entries per list. */
export function summarizeProfile(events: unknown, n = 12): ProfileSummary {
  const list = (Array.isArray(events) ? events : []) as TraceEvent[];
  const api = list.filter((e) => e.cat === 'Api' && typeof e.name === 'string' && e.name.includes('&'));
  const byOp = new Map<string, { us: number; count: number }>();
  const byKernel = new Map<string, { us: number; count: number }>();
  const add = (m: Map<string, { us: number; count: number }>, key: string, us: number): void => {
    const g = m.get(key) ?? { us: 0, count: 0 };
    g.us += us;
    g.count++;
    m.set(key, g);
  };
  let total = 0;
  if (api.length > 0) {
    for (const e of api) {
      const [, op = '?', program = '?'] = e.name!.split('&');
      const us = e.dur ?? 0;
      total += us;
      add(byOp, op, us);
      add(byKernel, program, us);
    }
  } else {
    for (const e of list) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
      const us = e.dur ?? 0;
      const op = e.args?.op_name ?? '?';
      total += us;
      add(byOp, op, us);
      add(byKernel, `${op} (${e.args?.provider ?? '?'})`, us);
    }
  }
  return {
    source: api.length > 0 ? 'gpu-timestamps' : 'cpu-node-times',
    totalMs: Math.round(total) / 1000,
    byOp: top(byOp, total, n),
    byKernel: top(byKernel, total, n),
  };
}
