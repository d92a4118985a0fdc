/**
 * JSON schema of a netconf handed to host-local. It is checked against the WHOLE netconf (host-local
 * also receives the bridge's config when delegated to), so unknown top-level keys pass; the `ipam`
 * section's shape is checked here and its values (CIDRs, ranges, overlaps) in ipam/config.ts.
 * Unknown keys inside `ipam` pass too, as with the reference (Go's JSON decoding ignores them).
 */
const ipText = { type: 'string', minLength: 1 } as const;

const range = {
  type: 'object',
  required: ['subnet'],
  properties: {
    subnet: ipText,
    rangeStart: { type: 'string' },
    rangeEnd: { type: 'string' },
    gateway: { type: 'string' },
  },
} as const;

const rangeSets = { type: 'array', items: { type: 'array', minItems: 1, items: range } } as const;

const ipList = { type: 'array', items: ipText } as const;

export const hostLocalSchema = {
  type: 'object',
  required: ['cniVersion', 'name', 'ipam'],
  properties: {
    cniVersion: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
    ipam: {
      type: 'object',
      required: ['type'],
      properties: {
        type: { type: 'string' },
        ranges: rangeSets,
        subnet: { type: 'string' },
        rangeStart: { type: 'string' },
        rangeEnd: { type: 'string' },
        gateway: { type: 'string' },
        routes: {
          type: 'array',
          items: { type: 'object', required: ['dst'], properties: { dst: ipText, gw: { type: 'string' } } },
        },
        dataDir: { type: 'string', minLength: 1 },
        resolvConf: { type: 'string' },
      },
    },
    args: {
      type: 'object',
      properties: { cni: { type: 'object', properties: { ips: ipList } } },
    },
    runtimeConfig: {
      type: 'object',
      properties: { ips: ipList, ipRanges: rangeSets },
    },
  },
} as const;
