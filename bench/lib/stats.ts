/** Small statistics helpers for repeated measurements. */

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1
    ? (v[mid] as number)
    : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, as a percentage; 0 with one repetition. */
  spreadPct: number;
  n: number;
}

export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x));
  const m = median(v);
  const min = v.length ? Math.min(...v) : NaN;
  const max = v.length ? Math.max(...v) : NaN;
  return {
    median: m,
    min,
    max,
    spreadPct: v.length > 1 && m > 0 ? ((max - min) / m) * 100 : 0,
    n: v.length,
  };
}

export function maxOf(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? Math.max(...v) : null;
}

export function medianOrNull(values: (number | null)[]): number | null {
  const m = median(values.filter((x): x is number => x !== null));
  return Number.isFinite(m) ? m : null;
}
