/**
 * The generated completion scripts in their real shells: bash (the completion function called as
 * bash calls it), fish (`complete -C`) and zsh (typed into an interactive zsh under tmux).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { bashCompletion, commandTree, fishCompletion, zshCompletion } from './completion.js';
import { buildProgram } from './program.js';

const tree = commandTree(await buildProgram());
const dir = mkdtempSync(join(tmpdir(), 'ctt-completion-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('the tree has every command group, nested subcommands and their options', (t) => {
  const root = tree.find((n) => n.path === '');
  for (const name of ['run', 'ps', 'pull', 'image', 'network', 'debug', 'completion']) {
    t.true(
      root?.subcommands.some((s) => s.name === name),
      name,
    );
  }
  const run = tree.find((n) => n.path === 'run');
  t.true(run?.options.some((o) => o.flags.includes('--publish') && o.takesValue));
  t.true(run?.options.some((o) => o.flags.includes('--detach') && !o.takesValue));
  t.truthy(tree.find((n) => n.path === 'image load'));
});

function bashComplete(line: string): string[] {
  const file = join(dir, 'ctnet.bash');
  writeFileSync(file, bashCompletion(tree));
  const words = line.split(' ');
  const script = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ctnet; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { encoding: 'utf8', cwd: dir }).split('\n').filter(Boolean);
}

test('bash: commands, subcommands, options of the command typed so far, files after an option that takes a value', (t) => {
  t.deepEqual(bashComplete('ctnet ne'), ['network']);
  t.deepEqual(bashComplete('ctnet network cr'), ['create']);
  t.deepEqual(bashComplete('ctnet run --pu'), ['--publish', '--publish-all', '--pull']);
  t.deepEqual(bashComplete('ctnet run -e A=1 --network none --rm'), ['--rm']);
  t.deepEqual(bashComplete('ctnet image load --in'), ['--input']);
  writeFileSync(join(dir, 'web.tar'), '');
  t.deepEqual(bashComplete('ctnet image load -i we'), ['web.tar']);
  t.deepEqual(bashComplete('ctnet completion '), ['bash', 'zsh', 'fish'], "an argument's choices");
  t.deepEqual(bashComplete('ctnet logs -f we'), ['web.tar'], 'any other argument: file names');
});

test('fish: the same answers through complete -C', (t) => {
  const file = join(dir, 'ctnet.fish');
  writeFileSync(file, fishCompletion(tree));
  const complete = (line: string) =>
    execFileSync('fish', ['--no-config', '-c', `source ${file}; complete -C '${line}'`], { encoding: 'utf8', cwd: dir })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0]);
  t.deepEqual(complete('ctnet netw'), ['network']);
  t.true(complete('ctnet network ').includes('create'));
  t.false(complete('ctnet network ').includes('run'), 'only the subcommands of the command typed');
  t.deepEqual(complete('ctnet run --pu'), ['--publish', '--publish-all', '--pull']);
});

test('zsh: Tab in an interactive zsh completes commands and options', async (t) => {
  const file = join(dir, '_ctnet');
  writeFileSync(file, zshCompletion(tree));
  const session = `ctt-completion-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '10', 'zsh', '-f');
  t.teardown(() => {
    try {
      tmux('kill-session', '-t', session);
    } catch {
      /* gone */
    }
  });
  const screen = async (want: RegExp) => {
    let text = '';
    for (let i = 0; i < 50 && !want.test(text); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = tmux('capture-pane', '-p', '-t', session);
    }
    return text;
  };
  tmux('send-keys', '-t', session, `PS1='> '; autoload -U compinit; compinit -u; source ${file}; clear`, 'Enter');
  await screen(/^> $/m);
  tmux('send-keys', '-t', session, 'ctnet netw', 'Tab');
  t.regex(await screen(/ctnet network$/m), /^> ctnet network$/m);
  tmux('send-keys', '-t', session, 'cr', 'Tab');
  t.regex(await screen(/ctnet network create$/m), /^> ctnet network create$/m);
  tmux('send-keys', '-t', session, 'C-u', 'ctnet run --publish-a', 'Tab');
  t.regex(await screen(/--publish-all$/m), /^> ctnet run --publish-all$/m);
});
