/**
 * `ctnet-owners`, ctnet's owner index inside a lease directory (format and the checks that decide whether it can be
 * believed; store.ts reads and writes it). An append-only log written under the lease lock:
 *
 *   ctnet-owners 1                       header
 *   L <ip> <file content as JSON>        the lease file <ip> holds this content
 *   C <cursor file> <ip>                 ctnet wrote (or read) this cursor value
 *   S <cursor file> <identity>           the cursor file's stat identity right after that (see fileIdentity)
 *
 * The last record of a name wins. Parsers of version 1 that predate `S` skip unknown record kinds, so the header
 * stays `ctnet-owners 1`; such a parser's rewrite drops the `S` records, which makes the next reader distrust the
 * log once and rewrite it (never the other way round).
 */
import { statSync } from 'node:fs';

export const ownerLogHeader = 'ctnet-owners 1';

/** The owner log as parsed (last record wins, names not yet checked against the listing). */
export interface ParsedOwnerLog {
  owners: Map<string, string>;
  cursors: Map<string, string>;
  /** Cursor file → its identity when ctnet last wrote or read it. */
  stamps: Map<string, string>;
  records: number;
}

function emptyOwnerLog(): ParsedOwnerLog {
  return { owners: new Map(), cursors: new Map(), stamps: new Map(), records: 0 };
}

/** Device, inode, size and both timestamps in ns: changes whenever the file is replaced or written. */
export function fileIdentity(file: string): string | undefined {
  try {
    const st = statSync(file, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

export const leaseRecord = (name: string, content: string): string => `L ${name} ${JSON.stringify(content)}`;
export const cursorRecord = (file: string, value: string): string => `C ${file} ${value}`;
export const stampRecord = (file: string, identity: string): string => `S ${file} ${identity}`;

/** The whole log, or undefined when it is damaged or torn (it must then be rewritten). */
export function parseOwnerLog(text: string): ParsedOwnerLog | undefined {
  const lines = text.split('\n');
  if (lines[0] !== ownerLogHeader || !text.endsWith('\n')) return undefined;
  const log = emptyOwnerLog();
  log.records = lines.length - 2;
  for (const line of lines) if (!applyOwnerRecord(log, line)) return undefined;
  return log;
}

/** How many records an intact log holds; undefined when it is damaged or torn. Does not parse the records. */
export function countOwnerRecords(text: string): number | undefined {
  if (!text.startsWith(`${ownerLogHeader}\n`) || !text.endsWith('\n')) return undefined;
  let n = -1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Applies one log line; false when the line is damaged. */
function applyOwnerRecord(log: ParsedOwnerLog, line: string): boolean {
  const kind = line[0];
  const sp = line.indexOf(' ', 2);
  if (sp < 0 || line[1] !== ' ') return true;
  const name = line.slice(2, sp);
  const value = line.slice(sp + 1);
  if (kind === 'C') log.cursors.set(name, value);
  else if (kind === 'S') log.stamps.set(name, value);
  else if (kind === 'L') {
    try {
      const content = JSON.parse(value) as unknown;
      if (typeof content !== 'string') return false;
      log.owners.set(name, content);
    } catch {
      return false;
    }
  }
  return true;
}
