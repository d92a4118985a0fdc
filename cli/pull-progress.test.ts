import test from 'ava';
import { pullProgress } from './pull-progress.js';

test('on a terminal each layer keeps one line, redrawn in place with a bar; elsewhere one line per change of state', (t) => {
  let screen = '';
  const tty = pullProgress((s) => {
    screen += s;
  }, true);
  tty.update({ layer: 'aaaaaaaaaaaa', status: 'Waiting' });
  tty.update({ layer: 'bbbbbbbbbbbb', status: 'Already exists' });
  tty.update({ layer: 'aaaaaaaaaaaa', status: 'Downloading', current: 500_000, total: 1_000_000 });
  tty.update({ layer: 'aaaaaaaaaaaa', status: 'Pull complete' });
  tty.finish();
  const frames = screen.split('\x1b[2A');
  t.true(frames.length >= 3, 'later frames move up over the two layer lines');
  t.regex(screen, /aaaaaaaaaaaa: Downloading \[=+> +\] 500\.0kB\/1\.0MB/);
  t.is(frames.at(-1), '\x1b[2Kaaaaaaaaaaaa: Pull complete\n\x1b[2Kbbbbbbbbbbbb: Already exists\n');

  const lines: string[] = [];
  const plain = pullProgress((s) => lines.push(s), false);
  plain.update({ layer: 'aaaaaaaaaaaa', status: 'Waiting' });
  for (const current of [1, 2, 3]) plain.update({ layer: 'aaaaaaaaaaaa', status: 'Downloading', current, total: 3 });
  plain.update({ layer: 'aaaaaaaaaaaa', status: 'Pull complete' });
  plain.finish();
  t.deepEqual(lines, ['aaaaaaaaaaaa: Waiting\n', 'aaaaaaaaaaaa: Downloading\n', 'aaaaaaaaaaaa: Pull complete\n']);
});
