import test from 'ava';
import { canonicalNodeRules } from './node-rules.js';

test('node rules take both networks in canonical subnet form', (t) => {
  t.deepEqual(canonicalNodeRules({ clusterCidr: '10.244.7.1/16', subnet: '10.244.3.9/24' }), {
    clusterCidr: '10.244.0.0/16',
    subnet: '10.244.3.0/24',
  });
});

test('node rules refuse IPv6 and text that is no CIDR, with code 7', (t) => {
  for (const bad of [
    { clusterCidr: 'fd00::/48', subnet: 'fd00::/64' },
    { clusterCidr: '10.244.0.0/16; flush ruleset', subnet: '10.244.3.0/24' },
  ]) {
    const err = t.throws(() => canonicalNodeRules(bad), undefined, bad.clusterCidr);
    t.is((err as { code?: number }).code, 7, bad.clusterCidr);
  }
});
