/**
 * JSON schema of the portmap plugin's config: the reference plugin's keys plus `stateDir`. Unknown keys pass
 * through (runtimes add their own); types are checked here, meanings (port ranges, addresses) in config.ts so the
 * messages can name the offending mapping.
 */
const conditions = { type: 'array', items: { type: 'string' } } as const;

export const portmapSchema = {
  type: 'object',
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersion: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
    capabilities: { type: 'object' },
    snat: { type: 'boolean' },
    masqAll: { type: 'boolean' },
    markMasqBit: { type: 'integer', minimum: 0, maximum: 31 },
    externalSetMarkChain: { type: 'string', minLength: 1 },
    conditionsV4: conditions,
    conditionsV6: conditions,
    backend: { enum: ['iptables', 'nftables'] },
    stateDir: { type: 'string', minLength: 1 },
    runtimeConfig: {
      type: 'object',
      properties: {
        portMappings: {
          type: 'array',
          items: {
            type: 'object',
            required: ['hostPort', 'containerPort'],
            properties: {
              hostPort: { type: 'integer' },
              containerPort: { type: 'integer' },
              protocol: { type: 'string' },
              hostIP: { type: 'string' },
            },
          },
        },
      },
    },
  },
} as const;
