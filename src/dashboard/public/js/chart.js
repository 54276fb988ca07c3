// Two small chart kinds drawn as inline SVG: horizontal bars, and horizontal stacked bars with
// a legend. No library; sizes in user units, the SVG scales to its container's width.

import { h, s } from './dom.js';

export const PALETTE = {
  green: '#2da44e', blue: '#3b82f6', amber: '#d4a72c', red: '#cf222e', orange: '#e16f24', purple: '#8250df', slate: '#6e7f96', grey: '#afb8c1', teal: '#1b9aaa',
};

/**
 * rows: [{ label, value, color?, note? }] → bars sorted as given; `format(value)` writes the
 * figure at the end of each bar.
 */
export function barChart(rows, { format = String, title = 'chart', labelWidth = 150, width = 560, barHeight = 22, gap = 8 } = {}) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const valueWidth = 90;
  const plot = width - labelWidth - valueWidth;
  const height = Math.max(1, rows.length) * (barHeight + gap) + gap;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'xMinYMin meet' });
  svg.append(s('title', null, title));
  rows.forEach((r, i) => {
    const y = gap + i * (barHeight + gap);
    const w = r.value > 0 ? Math.max(2, (r.value / max) * plot) : 0;
    const g = s('g', { class: 'bar', dataset: { label: r.label } });
    g.append(
      s('text', { x: labelWidth - 8, y: y + barHeight / 2, 'text-anchor': 'end', 'dominant-baseline': 'central', class: 'chart-label' }, r.label),
      s('rect', { x: labelWidth, y, width: plot, height: barHeight, rx: 3, class: 'chart-track' }),
      s('rect', { x: labelWidth, y, width: w, height: barHeight, rx: 3, fill: r.color ?? PALETTE.blue }, s('title', null, `${r.label}: ${format(r.value)}${r.note ? ` — ${r.note}` : ''}`)),
      s('text', { x: labelWidth + w + 6, y: y + barHeight / 2, 'dominant-baseline': 'central', class: 'chart-value' }, format(r.value)),
    );
    svg.append(g);
  });
  if (!rows.length) svg.append(s('text', { x: width / 2, y: height / 2 + 4, 'text-anchor': 'middle', class: 'chart-empty' }, 'nothing yet'));
  return svg;
}

/**
 * rows: [{ label, segments: [{ key, value }] }], keys: [{ key, label, color }] → one bar per row,
 * split by key, with a legend of the keys that occur.
 */
export function stackedBarChart(rows, keys, { format = String, title = 'chart', labelWidth = 150, width = 560, barHeight = 22, gap = 8 } = {}) {
  const totals = rows.map((r) => r.segments.reduce((n, x) => n + x.value, 0));
  const max = Math.max(1, ...totals);
  const valueWidth = 50;
  const plot = width - labelWidth - valueWidth;
  const height = Math.max(1, rows.length) * (barHeight + gap) + gap;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'xMinYMin meet' });
  svg.append(s('title', null, title));
  const color = new Map(keys.map((k) => [k.key, k.color]));
  const label = new Map(keys.map((k) => [k.key, k.label]));
  rows.forEach((r, i) => {
    const y = gap + i * (barHeight + gap);
    const g = s('g', { class: 'bar', dataset: { label: r.label } });
    g.append(s('text', { x: labelWidth - 8, y: y + barHeight / 2, 'text-anchor': 'end', 'dominant-baseline': 'central', class: 'chart-label' }, r.label));
    g.append(s('rect', { x: labelWidth, y, width: plot, height: barHeight, rx: 3, class: 'chart-track' }));
    let x = labelWidth;
    for (const seg of r.segments) {
      if (seg.value <= 0) continue;
      const w = (seg.value / max) * plot;
      g.append(s('rect', { x, y, width: Math.max(1, w), height: barHeight, fill: color.get(seg.key) ?? PALETTE.grey, class: 'segment', dataset: { key: seg.key } }, s('title', null, `${r.label} · ${label.get(seg.key) ?? seg.key}: ${format(seg.value)}`)));
      x += w;
    }
    g.append(s('text', { x: x + 6, y: y + barHeight / 2, 'dominant-baseline': 'central', class: 'chart-value' }, format(totals[i])));
    svg.append(g);
  });
  if (!rows.length) svg.append(s('text', { x: width / 2, y: height / 2 + 4, 'text-anchor': 'middle', class: 'chart-empty' }, 'nothing yet'));
  const used = new Set(rows.flatMap((r) => r.segments.filter((x) => x.value > 0).map((x) => x.key)));
  const legend = h('ul', { class: 'legend' }, keys.filter((k) => used.has(k.key)).map((k) => h('li', null, swatch(k.color), k.label)));
  return h('figure', { class: 'chart-figure' }, svg, legend);
}

function swatch(color) {
  return s('svg', { class: 'swatch', viewBox: '0 0 10 10', width: 10, height: 10, 'aria-hidden': 'true' }, s('rect', { width: 10, height: 10, rx: 2, fill: color }));
}
