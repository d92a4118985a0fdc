/** JSON schema of the host-local plugin's config (keys of the reference plugin; unknown keys pass through). */
export const hostLocalSchema = {
  type: 'object',
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersion: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
  },
} as const;
