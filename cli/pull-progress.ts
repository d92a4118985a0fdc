/**
 * `pull`'s progress as Docker shows it: one line per layer. On a terminal the lines are redrawn in
 * place (at most ten times a second) with a bar and the bytes so far; elsewhere each layer's
 * change of state is one line.
 */
import type { PullProgress } from '../runner/index.js';

function bytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}kB` : `${n}B`;
}

function lineOf(p: PullProgress): string {
  if (p.status !== 'Downloading' || p.current === undefined) return `${p.layer}: ${p.status}`;
  if (!p.total) return `${p.layer}: Downloading ${bytes(p.current)}`;
  const width = 40;
  const done = Math.min(width, Math.floor((p.current / p.total) * width));
  const bar = `[${'='.repeat(Math.max(0, done - 1))}${done > 0 ? '>' : ''}${' '.repeat(width - done)}]`;
  return `${p.layer}: Downloading ${bar} ${bytes(p.current)}/${bytes(p.total)}`;
}

export function pullProgress(
  write: (text: string) => void,
  terminal: boolean,
): { update(p: PullProgress): void; finish(): void } {
  const order: string[] = [];
  const latest = new Map<string, PullProgress>();
  let drawn = 0;
  let lastDraw = 0;
  const draw = () => {
    let text = drawn ? `\x1b[${drawn}A` : '';
    for (const id of order) text += `\x1b[2K${lineOf(latest.get(id) as PullProgress)}\n`;
    drawn = order.length;
    lastDraw = Date.now();
    write(text);
  };
  return {
    update(p) {
      const before = latest.get(p.layer);
      if (!before) order.push(p.layer);
      latest.set(p.layer, p);
      if (terminal) {
        if (before?.status !== p.status || Date.now() - lastDraw > 100) draw();
      } else if (before?.status !== p.status) {
        write(`${p.layer}: ${p.status}\n`);
      }
    },
    finish() {
      if (terminal && order.length) draw();
    },
  };
}
