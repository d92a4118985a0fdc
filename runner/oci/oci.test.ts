import test from 'ava';
import { commandLine, imageDefaults } from './config.js';
import { pickForPlatform } from './platform.js';
import { familiarName, parseReference } from './reference.js';

test('references read as Docker reads them', (t) => {
  t.deepEqual(parseReference('busybox'), {
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    digest: undefined,
  });
  t.deepEqual(parseReference('127.0.0.1:5000/team/app:v2'), {
    registry: '127.0.0.1:5000',
    repository: 'team/app',
    tag: 'v2',
    digest: undefined,
  });
  t.is(parseReference('localhost/app').registry, 'localhost');
  t.is(parseReference('user/app').repository, 'user/app');
  const digest = `sha256:${'a'.repeat(64)}`;
  t.deepEqual(parseReference(`app@${digest}`), { registry: 'docker.io', repository: 'library/app', tag: undefined, digest });
  t.is(familiarName(parseReference('docker.io/library/busybox:1.36')), 'busybox:1.36');
  t.is(familiarName(parseReference('localhost:5000/app')), 'localhost:5000/app:latest');
  for (const bad of ['UPPER', 'a//b', 'app:', `app@sha256:xyz`, ':tag']) {
    t.throws(() => parseReference(bad), { message: /invalid reference format/ }, bad);
  }
});

test('Entrypoint and Cmd combine with the command and --entrypoint as in Docker', (t) => {
  const image = imageDefaults({
    config: { Entrypoint: ['/entry'], Cmd: ['serve', '-v'], Env: ['A=1'], ExposedPorts: { '80/tcp': {} } },
  });
  t.deepEqual(commandLine(image, undefined, []), ['/entry', 'serve', '-v'], 'both from the image');
  t.deepEqual(commandLine(image, undefined, ['other']), ['/entry', 'other'], 'the command replaces Cmd');
  t.deepEqual(commandLine(image, '/bin/echo', []), ['/bin/echo'], '--entrypoint clears Cmd');
  t.deepEqual(commandLine(image, '/bin/echo', ['hi']), ['/bin/echo', 'hi']);
  t.deepEqual(commandLine(image, '', ['ls']), ['ls'], '--entrypoint "" clears the entrypoint');
  t.is(commandLine(imageDefaults({ config: { Cmd: null } }), undefined, []), undefined, 'nothing to run');
  t.deepEqual(image.exposedPorts, ['80/tcp']);
});

test("an index's manifest for the host's platform; attestations are never picked", (t) => {
  const m = (digest: string, architecture?: string, variant?: string) => ({
    digest,
    platform: architecture ? { os: 'linux', architecture, variant } : undefined,
  });
  const here = { os: 'linux', architecture: 'amd64' };
  t.is(pickForPlatform([m('arm', 'arm64', 'v8'), m('x86', 'amd64')], here)?.digest, 'x86');
  t.is(
    pickForPlatform([m('v6', 'arm', 'v6'), m('v7', 'arm', 'v7')], { os: 'linux', architecture: 'arm', variant: 'v7' })?.digest,
    'v7',
  );
  t.is(pickForPlatform([m('arm', 'arm64')], here), undefined);
  t.is(
    pickForPlatform([{ digest: 'att', annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }], here),
    undefined,
  );
});
