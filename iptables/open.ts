/**
 * Picks a backend by name or by what the host has. Cheap: stat calls only, no program is run. The backends are
 * imported statically: their native parts (koffi, libnftables) load on first use, not with the module.
 */
import { CtnetError, ErrorCode } from '../core/index.js';
import { nftLibrary, openNftExec } from './nft-exec.js';
import { NftablesFirewall } from './nftables.js';
import { NoFirewall } from './none.js';
import type { Firewall, FirewallBackendName } from './types.js';
import { IptablesFirewall } from './xtables.js';
import { detectXtables, findProgram } from './xtables-tools.js';

export async function openFirewall(backend: FirewallBackendName | 'auto' = 'auto'): Promise<Firewall> {
  switch (backend) {
    case 'none': {
      return new NoFirewall();
    }
    case 'iptables': {
      const tools = detectXtables();
      if (!tools) {
        throw new CtnetError(ErrorCode.invalidConfig, 'failed to open the iptables firewall backend: iptables is not installed', {
          hint: 'install iptables, or choose the nftables backend',
        });
      }
      return new IptablesFirewall(tools);
    }
    case 'nftables': {
      const nft = findProgram('nft');
      if (!nft) {
        throw new CtnetError(ErrorCode.invalidConfig, 'failed to open the nftables firewall backend: nft is not installed', {
          hint: 'install nftables, or choose the iptables backend',
        });
      }
      return new NftablesFirewall(openNftExec(nft));
    }
    case 'auto': {
      if (detectXtables()) return openFirewall('iptables');
      if (findProgram('nft')) return openFirewall('nftables');
      throw new CtnetError(ErrorCode.invalidConfig, 'failed to open a firewall backend: neither iptables nor nft is installed', {
        hint: 'install iptables or nftables',
      });
    }
    default:
      throw new CtnetError(ErrorCode.invalidConfig, `unknown firewall backend ${JSON.stringify(backend)}`);
  }
}

/**
 * The backend a new network of ctnet's own runner should name: nftables when libnftables can run it
 * in-process (no process start per change, no kernel flush per delete: see nft-exec.ts), else what
 * `auto` picks. Netavark (Podman 5) made the same move to nftables. Loads the library (~5 ms).
 */
export async function preferredBackend(): Promise<'iptables' | 'nftables' | undefined> {
  const nft = findProgram('nft');
  if (nft && nftLibrary()) return 'nftables';
  if (detectXtables()) return 'iptables';
  return nft ? 'nftables' : undefined;
}
