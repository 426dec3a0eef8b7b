// `kg plan -o text`: the plan for people — a topology table, then `ip route`, `ip rule`, `wg` and
// `iptables-save` style listings.
import type { Family, IptablesRule, PlanJSON, Route, Rule } from './types.js';

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function routeText(r: Route): string {
  const parts = [r.dst];
  if (r.gw) parts.push('via', r.gw);
  if (r.dev) parts.push('dev', r.dev);
  if (r.table !== null) parts.push('table', String(r.table));
  parts.push('proto', r.protocol);
  if (r.src) parts.push('src', r.src);
  if (r.onlink) parts.push('onlink');
  return parts.join(' ');
}

export function ruleText(r: Rule): string {
  const parts: string[] = [];
  if (r.priority !== null) parts.push(`${r.priority}:`);
  parts.push(r.src ? `from ${r.src}` : 'from all');
  if (r.dst) parts.push('to', r.dst);
  if (r.iif) parts.push('iif', r.iif);
  parts.push('lookup', String(r.table));
  return parts.join(' ');
}

function quoteArgs(args: string[]): string {
  return args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

function iptablesText(p: PlanJSON, family: Family): string {
  const out: string[] = [];
  const tables = [...new Set([...p.iptables.chains, ...p.iptables.prepend, ...p.iptables.append].filter((x) => x.family === family).map((x) => x.table))].sort();
  for (const t of tables) {
    out.push(`*${t}`);
    for (const c of p.iptables.chains) if (c.family === family && c.table === t) out.push(`:${c.chain} - [0:0]`);
    const rules = (list: IptablesRule[], tag: string) => {
      for (const r of list) if (r.family === family && r.table === t) out.push(`-A ${r.chain} ${quoteArgs(r.rule)}${tag}`);
    };
    rules(p.iptables.prepend, '   # prepend');
    rules(p.iptables.append, '');
    out.push('COMMIT');
  }
  return out.join('\n');
}

export function planText(p: PlanJSON): string {
  const out: string[] = [];
  // Cross granularity names the node's location group (design §19.1), which decides its tunnels.
  const group = p.nodeLocation !== undefined ? `, location group ${p.nodeLocation ?? '(none)'}` : '';
  out.push(`node ${p.hostname}: segment ${p.location}, ${p.leader ? 'leader' : 'not a leader'}, WireGuard ${p.wireGuardCIDR}, granularity ${p.granularity}${group}`);
  const ready = p.nodes.filter((n) => n.ready).length;
  out.push(`${p.nodes.length} nodes (${ready} ready), ${p.peers.length} peers (${p.peers.filter((x) => x.ready).length} ready)`);
  out.push('', '# topology');
  if (p.segments.length === 0) out.push('(none)');
  else {
    const cross = p.nodeLocation !== undefined;
    const rows = [['SEGMENT', ...(cross ? ['LOCATION GROUP'] : []), 'LEADER', 'WIREGUARD IP', 'ENDPOINT', 'NODES', 'ALLOWED LOCATION IPS']];
    for (const s of p.segments) {
      rows.push([
        s.location,
        ...(cross ? [s.nodeLocation ?? '-'] : []),
        s.hostnames[s.leader] ?? '',
        s.wireGuardIP,
        s.endpoint ? (s.endpoint.resolved ?? `${s.endpoint.host}:${s.endpoint.port}`) : '-',
        s.hostnames.join(','),
        s.allowedLocationIPs.join(',') || '-',
      ]);
    }
    out.push(table(rows));
  }
  if (p.peers.length) {
    out.push('', '# peers');
    const rows = [['PEER', 'READY', 'ALLOWED IPS', 'ENDPOINT']];
    for (const x of p.peers) rows.push([x.name, String(x.ready), x.allowedIPs.join(',') || '-', x.endpoint ? `${x.endpoint.host}:${x.endpoint.port}` : '-']);
    out.push(table(rows));
  }
  out.push('', `# ip route (${p.routes.length})`, ...p.routes.map(routeText));
  out.push('', `# ip rule (${p.rules.length})`, ...p.rules.map(ruleText));
  const wg = p.wireguard;
  out.push('', `# wg (${wg.interface}, mtu ${wg.mtu}${wg.applied ? '' : ', not applied: this node does not lead its segment'})`);
  if (wg.applied) {
    out.push('[Interface]', 'PrivateKey = (redacted)', `ListenPort = ${wg.listenPort}`);
    for (const peer of wg.peers) {
      out.push('', '[Peer]');
      if (peer.allowedIPs.length) out.push(`AllowedIPs = ${peer.allowedIPs.join(', ')}`);
      if (peer.endpoint) out.push(`Endpoint = ${peer.endpoint}`);
      out.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
      if (peer.presharedKey) out.push('PresharedKey = (redacted)');
      out.push(`PublicKey = ${peer.publicKey}`);
    }
  }
  out.push('', '# iptables-save (ipv4)', iptablesText(p, 'ipv4'));
  out.push('', '# ip6tables-save (ipv6)', iptablesText(p, 'ipv6'));
  if (p.warnings.length) out.push('', `# warnings (${p.warnings.length})`, ...p.warnings);
  return out.join('\n') + '\n';
}
