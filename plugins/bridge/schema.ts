/**
 * JSON schema of the bridge plugin's config: the reference plugin's keys. Unknown keys pass
 * through (other plugins' and runtimes' keys share the object); values are checked by type here
 * and by meaning in config.ts.
 */
const vlanId = { type: 'integer', minimum: 0, maximum: 4094 } as const;

export const bridgeSchema = {
  type: 'object',
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersion: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
    bridge: { type: 'string', minLength: 1, maxLength: 15 },
    isGateway: { type: 'boolean' },
    isDefaultGateway: { type: 'boolean' },
    forceAddress: { type: 'boolean' },
    ipMasq: { type: 'boolean' },
    ipMasqBackend: { enum: ['iptables', 'nftables'] },
    mtu: { type: 'integer', minimum: 0, maximum: 65535 },
    hairpinMode: { type: 'boolean' },
    promiscMode: { type: 'boolean' },
    vlan: vlanId,
    vlanTrunk: {
      type: 'array',
      items: {
        type: 'object',
        properties: { id: vlanId, minID: vlanId, maxID: vlanId },
      },
    },
    preserveDefaultVlan: { type: 'boolean' },
    enabledad: { type: 'boolean' },
    macspoofchk: { type: 'boolean' },
    disableContainerInterface: { type: 'boolean' },
    portIsolation: { type: 'boolean' },
    ipam: { type: 'object', properties: { type: { type: 'string' } } },
    dns: {
      type: 'object',
      properties: {
        nameservers: { type: 'array', items: { type: 'string' } },
        domain: { type: 'string' },
        search: { type: 'array', items: { type: 'string' } },
        options: { type: 'array', items: { type: 'string' } },
      },
    },
    runtimeConfig: {
      type: 'object',
      properties: { mac: { type: 'string' } },
    },
    args: {
      type: 'object',
      properties: { cni: { type: 'object', properties: { mac: { type: 'string' } } } },
    },
  },
} as const;
