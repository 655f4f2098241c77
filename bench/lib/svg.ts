/**
 * The plot in docs/benchmarks.svg, drawn by hand (no plotting library): horizontal bars of
 * req/s and of p99 latency per configuration, for 1 KiB responses at 32 concurrent and for
 * 1 MiB responses at 32 concurrent.
 */
import { LABELS, type Results } from './results.js';
import { summaries } from './report.js';

/** Text for SVG (or any XML) content and attribute values. */
export const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Bar {
  name: string;
  value: number;
  /** Range drawn as a whisker (min–max over repetitions). */
  low?: number;
  high?: number;
}

function colour(name: string): string {
  if (name.startsWith('trustrun-')) return '#2563eb';
  if (['direct', 'tunnel', 'tls-relay', 'http-relay'].includes(name)) return '#6b7280';
  return '#d97706';
}

function panel(
  title: string,
  unit: string,
  bars: Bar[],
  x: number,
  y: number,
  width: number,
): { svg: string; height: number } {
  const labelW = 225;
  const barH = 18;
  const gap = 8;
  const plotW = width - labelW - 70;
  const max = Math.max(1e-9, ...bars.map((b) => b.high ?? b.value));
  const parts = [`<text x="${x}" y="${y + 14}" font-weight="bold">${esc(title)}</text>`];
  let row = y + 28;
  for (const b of bars) {
    const w = Math.max(1, (b.value / max) * plotW);
    parts.push(
      `<text x="${x + labelW - 6}" y="${row + 13}" text-anchor="end">${esc(LABELS[b.name] ?? b.name)}</text>`,
      `<rect x="${x + labelW}" y="${row}" width="${w.toFixed(1)}" height="${barH}" fill="${colour(b.name)}"/>`,
    );
    if (b.low !== undefined && b.high !== undefined && b.high > b.low) {
      const x1 = x + labelW + (b.low / max) * plotW;
      const x2 = x + labelW + (b.high / max) * plotW;
      const mid = row + barH / 2;
      parts.push(
        `<path d="M${x1.toFixed(1)} ${mid}H${x2.toFixed(1)}M${x1.toFixed(1)} ${mid - 4}v8M${x2.toFixed(1)} ${mid - 4}v8" stroke="#111827" stroke-width="1"/>`,
      );
    }
    const text =
      b.value >= 100
        ? Math.round(b.value).toLocaleString('en-US')
        : b.value.toFixed(b.value >= 10 ? 1 : 2);
    parts.push(
      `<text x="${x + labelW + Math.max(w, b.high !== undefined ? (b.high / max) * plotW : 0) + 6}" y="${row + 13}">${text} ${esc(unit)}</text>`,
    );
    row += barH + gap;
  }
  if (bars.length === 0) {
    parts.push(`<text x="${x}" y="${row + 13}">not measured</text>`);
    row += barH + gap;
  }
  return { svg: parts.join('\n'), height: row - y + 10 };
}

export function renderSvg(r: Results): string {
  const s = summaries(r);
  const order = r.configs.filter((c) => c.available).map((c) => c.name);
  const width = 520;
  const panels: [string, string, Bar[]][] = [];
  for (const cell of ['1k-c32', '1m-c32'] as const) {
    const cells = s[cell];
    const names = order.filter((n) => cells[n]);
    const what = cell === '1k-c32' ? '1 KiB' : '1 MiB';
    panels.push([
      `req/s, ${what} responses, 32 concurrent (median, min–max)`,
      'req/s',
      names.map((n) => ({
        name: n,
        value: cells[n]!.rps.median,
        low: cells[n]!.rps.min,
        high: cells[n]!.rps.max,
      })),
    ]);
    panels.push([
      `p99 latency, ${what} responses, 32 concurrent`,
      'ms',
      names.map((n) => ({ name: n, value: cells[n]!.p99Ms })),
    ]);
  }
  let left = '';
  let right = '';
  let hLeft = 40;
  let hRight = 40;
  panels.forEach(([title, unit, bars], i) => {
    const col = i % 2;
    const p = panel(title, unit, bars, 10 + col * (width + 20), col === 0 ? hLeft : hRight, width);
    if (col === 0) {
      left += p.svg;
      hLeft += p.height + 10;
    } else {
      right += p.svg;
      hRight += p.height + 10;
    }
  });
  const height = Math.max(hLeft, hRight) + 10;
  const total = 2 * width + 40;
  const date = r.startedAt.slice(0, 10);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="${height}" viewBox="0 0 ${total} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="22" font-size="15" font-weight="bold">TrustRun proxy benchmarks, ${esc(date)} — ${r.machine.cores} cores, ${esc(r.machine.cpuModel)}, Node ${esc(r.machine.node)}${r.settings.quick ? ' (quick run)' : ''}</text>
${left}
${right}
</svg>
`;
}
