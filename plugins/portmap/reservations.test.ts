import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { hostIPsOverlap } from '../../core/index.js';
import { ReservationStore } from './reservations.js';

function store(t: { teardown(fn: () => void): void }): ReservationStore {
  const dir = mkdtempSync(join(tmpdir(), 'ctnet-portmap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return new ReservationStore(dir);
}

const execFileAsync = promisify(execFile);
const key = (containerId: string) => ({ network: 'net1', containerId, ifname: 'eth0' });
const tcp = (hostPort: number, hostIP = '') => ({ protocol: 'tcp', hostPort, hostIP });

test('host address scopes overlap as the kernel would match them', (t) => {
  t.true(hostIPsOverlap('', '10.0.0.1'));
  t.true(hostIPsOverlap('', '::'));
  t.true(hostIPsOverlap('0.0.0.0', '10.0.0.1'));
  t.false(hostIPsOverlap('0.0.0.0', '::'));
  t.false(hostIPsOverlap('0.0.0.0', 'fd00::1'));
  t.true(hostIPsOverlap('::', 'fd00::1'));
  t.false(hostIPsOverlap('10.0.0.1', '10.0.0.2'));
  t.true(hostIPsOverlap('10.0.0.1', '10.0.0.1'));
});

test('a conflicting claim fails with code 101 naming port and holder, and leaves nothing behind', async (t) => {
  const s = store(t);
  await s.claim(key('first'), [tcp(8080)]);
  for (const claim of [tcp(8080), tcp(8080, '10.0.0.1'), tcp(8080, '0.0.0.0')]) {
    const err = await t.throwsAsync(s.claim(key('second'), [tcp(9000), claim]));
    t.is((err as { code?: number }).code, 101);
    t.regex(err?.message ?? '', /8080\/tcp: already published by container "first"/);
  }
  t.is(s.held(key('second')), undefined);
  t.deepEqual(readdirSync(join(s.dir, 'ports')).sort(), ['tcp-8080']);
  t.deepEqual(readdirSync(join(s.dir, 'ports', 'tcp-8080')), ['any']);
});

test('claims that cannot meet the same packet coexist: other protocol, other address, other family', async (t) => {
  const s = store(t);
  await s.claim(key('a'), [tcp(8080, '10.0.0.1')]);
  await t.notThrowsAsync(s.claim(key('b'), [tcp(8080, '10.0.0.2')]));
  await t.notThrowsAsync(s.claim(key('c'), [{ protocol: 'udp', hostPort: 8080, hostIP: '' }]));
  await t.notThrowsAsync(s.claim(key('d'), [tcp(8080, '::')]));
  await t.throwsAsync(s.claim(key('e'), [tcp(8080, '0.0.0.0')]));
});

test('a repeated claim by the same attachment replaces its earlier one; release frees the ports', async (t) => {
  const s = store(t);
  await s.claim(key('a'), [tcp(8080), tcp(8081)]);
  await s.claim(key('a'), [tcp(8081), tcp(8082)]);
  t.deepEqual(s.held(key('a')), [tcp(8081), tcp(8082)]);
  await t.notThrowsAsync(s.claim(key('b'), [tcp(8080)]));
  t.deepEqual(await s.release(key('a')), [tcp(8081), tcp(8082)]);
  t.is(await s.release(key('a')), undefined);
  t.deepEqual(readdirSync(join(s.dir, 'ports')), ['tcp-8080']);
});

test('release never removes a claim another attachment holds', async (t) => {
  const s = store(t);
  await s.claim(key('a'), [tcp(8080)]);
  await t.throwsAsync(s.claim(key('b'), [tcp(8080)]));
  await s.release(key('b'));
  await t.throwsAsync(s.claim(key('c'), [tcp(8080)]));
});

test('gc releases attachments of the network that are not valid, and only those', async (t) => {
  const s = store(t);
  await s.claim(key('keep'), [tcp(1)]);
  await s.claim(key('stale'), [tcp(2)]);
  await s.claim({ ...key('other'), network: 'net2' }, [tcp(3)]);
  const released = await s.gc('net1', [{ network: 'net1', containerId: 'keep', ifname: 'eth0' }]);
  t.deepEqual(
    released.map((r) => r.containerId),
    ['stale'],
  );
  t.deepEqual(readdirSync(join(s.dir, 'ports')).sort(), ['tcp-1', 'tcp-3']);
});

test('overlapping claims racing in separate processes never both succeed', async (t) => {
  const s = store(t);
  const script = `
    const { ReservationStore } = await import(${JSON.stringify(new URL('./reservations.ts', import.meta.url).href)});
    const [dir, id, hostIP] = process.argv.slice(-3);
    const s = new ReservationStore(dir);
    try { await s.claim({ network: 'net1', containerId: id, ifname: 'eth0' }, [{ protocol: 'tcp', hostPort: 8080, hostIP: hostIP === '-' ? '' : hostIP }]); console.log('won'); }
    catch (e) { console.log(e.code === 101 ? 'lost' : 'error ' + e.message); }`;
  const runs = Array.from({ length: 8 }, (_, i) =>
    execFileAsync(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
      s.dir,
      `c${i}`,
      i % 2 ? '-' : `10.0.0.${i}`,
    ]),
  );
  const outcomes = (await Promise.all(runs)).map((r) => r.stdout.trim());
  t.deepEqual(
    outcomes.filter((o) => o !== 'won' && o !== 'lost'),
    [],
  );
  // Whoever won holds claims that do not overlap each other: a wildcard only alone, addresses only distinct.
  const holders = readdirSync(join(s.dir, 'ports', 'tcp-8080'));
  t.is(outcomes.filter((o) => o === 'won').length, holders.length);
  t.false(holders.includes('any') && holders.length > 1, holders.join(','));
});

test('release removes the temp record a killed writer left, and not one a live writer is still writing', async (t) => {
  const s = store(t);
  await s.claim(key('a'), [tcp(8080)]);
  const dir = join(s.dir, 'attachments');
  const [record] = readdirSync(dir);
  writeFileSync(join(dir, `${record}.999999999.tmp`), '{"half');
  writeFileSync(join(dir, `${record}.${process.pid}.tmp`), '{"half');
  await s.release(key('a'));
  t.deepEqual(readdirSync(dir), [`${record}.${process.pid}.tmp`]);
  // Also when the writer was killed before its first record was ever renamed into place.
  rmSync(join(dir, `${record}.${process.pid}.tmp`));
  writeFileSync(join(dir, `${record}.999999999.tmp`), '{"half');
  t.is(await s.release(key('a')), undefined);
  t.deepEqual(readdirSync(dir), []);
});
