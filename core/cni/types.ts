/** CNI data types. Internally every result is held in the 1.1.0 shape and converted once on output. */

export const CniCommands = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof CniCommands)[number];

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR notation: the address with its prefix length. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

export interface CniAttachment {
  containerID: string;
  ifname: string;
}

/** The network configuration a plugin receives on stdin (one plugin of a list, runtime keys added). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: CniDns;
  args?: { cni?: { ips?: string[]; mac?: string; [key: string]: unknown }; [key: string]: unknown };
  runtimeConfig?: Record<string, unknown>;
  prevResult?: unknown;
  'cni.dev/valid-attachments'?: CniAttachment[];
  'cni.dev/attachments'?: CniAttachment[];
  [key: string]: unknown;
}

/** The CNI_* parameters, parsed. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string[];
}
