/** `ctnet debug graph [--dot]`: bridges, veths, containers, addresses, published ports. */
import { type Topology, topology } from '../../../debug/index.js';
import { ctnetPaths } from '../../../network/index.js';
import type { ClusterView } from '../../../node/index.js';
import { clusterView } from '../../../node/index.js';
import { printJson } from '../../output.js';

function containerLabel(c: { id: string; name?: string }): string {
  return c.name && c.name !== c.id ? c.name : c.id.slice(0, 12);
}

export function renderTree(t: Topology): string {
  const lines = ['host'];
  t.bridges.forEach((br, i) => {
    const lastBridge = i === t.bridges.length - 1 && t.detached.length === 0;
    const nets = br.networks.length ? `  network ${br.networks.join(',')}` : '';
    lines.push(
      `${lastBridge ? '└── ' : '├── '}${br.name}  bridge ${br.exists ? (br.up ? 'up' : 'DOWN') : 'not created yet'}  ${br.addresses.join(',') || '-'}${nets}`,
    );
    const indent = lastBridge ? '    ' : '│   ';
    if (br.ports.length === 0) lines.push(`${indent}└── (no containers)`);
    br.ports.forEach((p, j) => {
      const branch = j === br.ports.length - 1 ? '└── ' : '├── ';
      const c = p.container;
      const ctr = c
        ? `${containerLabel(c)} ${c.ifname} ${c.addresses.join(',') || '(no address)'}${c.ports.length ? `  ports ${c.ports.join(' ')}` : ''}`
        : '(no known container)';
      lines.push(`${indent}${branch}${p.name} ${p.up ? 'up' : 'DOWN'} ── ${ctr}`);
    });
  });
  t.detached.forEach((d, i) => {
    lines.push(`${i === t.detached.length - 1 ? '└── ' : '├── '}${containerLabel(d)}  (${d.reason})`);
  });
  return `${lines.join('\n')}\n`;
}

const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

export function renderDot(t: Topology): string {
  const out = ['digraph ctnet {', '  rankdir=LR;', '  node [fontname="monospace"];', `  ${q('host')} [shape=box3d];`];
  for (const br of t.bridges) {
    const label = [br.name, ...br.addresses, ...br.networks.map((n) => `network ${n}`), br.up ? '' : 'DOWN']
      .filter(Boolean)
      .join('\\n');
    out.push(
      `  ${q(`br:${br.name}`)} [shape=box label=${q(label).replaceAll('\\\\n', '\\n')}${br.exists && !br.up ? ' color=red' : ''}${br.exists ? '' : ' style=dashed'}];`,
    );
    out.push(`  ${q('host')} -> ${q(`br:${br.name}`)};`);
    for (const p of br.ports) {
      out.push(`  ${q(`veth:${p.name}`)} [shape=ellipse label=${q(p.name)}${p.up ? '' : ' color=red'}];`);
      out.push(`  ${q(`br:${br.name}`)} -> ${q(`veth:${p.name}`)};`);
      if (p.container) {
        const c = p.container;
        const label = [containerLabel(c), `${c.ifname} ${c.addresses.join(',')}`, ...c.ports].join('\\n');
        out.push(`  ${q(`ctr:${c.id}`)} [shape=component label=${q(label).replaceAll('\\\\n', '\\n')}];`);
        out.push(`  ${q(`veth:${p.name}`)} -> ${q(`ctr:${c.id}`)};`);
      }
    }
  }
  for (const d of t.detached) out.push(`  ${q(`ctr:${d.id}`)} [shape=component style=dashed label=${q(containerLabel(d))}];`);
  out.push('}');
  return `${out.join('\n')}\n`;
}

export async function debugGraph(opts: { dot?: boolean; json?: boolean }): Promise<void> {
  const t = await topology(ctnetPaths());
  const cluster = clusterView(ctnetPaths());
  if (opts.json) return printJson(cluster ? { ...t, cluster } : t);
  if (opts.dot) {
    const dot = renderDot(t);
    process.stdout.write(cluster ? dot.replace(/\}\n$/, `${renderClusterDot(cluster)}}\n`) : dot);
  } else process.stdout.write(renderTree(t) + (cluster ? renderClusterTree(cluster) : ''));
}

function peerVia(p: ClusterView['peers'][number], c: ClusterView): string {
  if (p.mode === 'host-gw') return `host-gw via ${p.nodeIp}`;
  if (p.mode === 'vxlan') return `vxlan ${c.vxlanLink ?? ''} → ${p.nodeIp}`;
  return `NOT ROUTED: ${p.problem ?? ''}`;
}

/** The other nodes of the cluster (`ctnet node`) as the agent last programmed them. */
export function renderClusterTree(c: ClusterView): string {
  const lines = [`cluster ${c.clusterCidr}  (this node ${c.node} ${c.subnet}, backend ${c.backend})`];
  if (!c.peers.length) lines.push('└── (no other node)');
  c.peers.forEach((p, i) => {
    lines.push(`${i === c.peers.length - 1 ? '└── ' : '├── '}${p.node} ${p.subnet}  ${peerVia(p, c)}`);
  });
  return `${lines.join('\n')}\n`;
}

function renderClusterDot(c: ClusterView): string {
  const out = [`  ${q('cluster')} [shape=cloud label=${q(`cluster ${c.clusterCidr}`)}];`, `  ${q('host')} -> ${q('cluster')};`];
  for (const p of c.peers) {
    out.push(
      `  ${q(`peer:${p.node}`)} [shape=box3d label=${q(`${p.node} ${p.subnet}`)}${p.mode === 'unreachable' ? ' color=red' : ''}];`,
    );
    out.push(`  ${q('cluster')} -> ${q(`peer:${p.node}`)} [label=${q(p.mode)}];`);
  }
  return `${out.join('\n')}\n`;
}
