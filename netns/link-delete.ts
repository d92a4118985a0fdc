/**
 * Deletes a link (for a veth, both ends) as deleteLink does, without waiting for the kernel's cleanup.
 *
 * Unregistering a device ends with the kernel waiting for RCU (15–40 ms, whatever the number of links), inside
 * the send of the request. The native socket binding sends on the main thread, so this request goes out from a
 * worker thread (koffi's send), on a socket of its own in the target namespace, with the same codec and the same
 * answer matching as every other request (core's NetlinkAnswers). It asks for an echo: the kernel sends the
 * RTM_DELLINK notification back when the device is unregistered, before that wait. One request that needs the
 * RTNL lock after it (a lookup of the name) then ends once the whole batch is done (a veth's peer is unregistered
 * right after it, under the same lock). What remains of the kernel's work runs on: JavaScript and the caller go on
 * meanwhile. A kernel that does not echo (before 6.3) answers at the end, as before.
 */
import { closeSync } from 'node:fs';
import {
  CtnetError,
  ErrorCode,
  hasErrno,
  NetlinkAnswers,
  NLM_F_ACK,
  NLM_F_ECHO,
  nextNetlinkSeq,
  threadNetnsKey,
  wrapError,
} from '../core/index.js';
import { createNetlinkSocket, recvNow, sendOnWorker, socketNetnsIdentity } from './libc.js';
import { deleteLinkBody, isLinkName, parseLink } from './link.js';
import { withNetlink } from './netlink.js';
import { RTM_DELLINK } from './rtnl-codec.js';
import { inNetns } from './switch.js';

const NETLINK_ROUTE = 0;

/** False if there was no such link. */
export async function deleteLinkOffThread(nsPath: string | undefined, name: string): Promise<boolean> {
  if (!isLinkName(name)) return false;
  const where = nsPath === undefined ? '' : ` in ${nsPath}`;
  let fd: number;
  try {
    fd = openDeleteSocket(nsPath);
  } catch (err) {
    if (err instanceof CtnetError) throw err;
    throw wrapError(`open a netlink socket${where}`, err);
  }
  // The socket is this request's alone: whatever the kernel unicasts to it is for us.
  const answers = new NetlinkAnswers(NETLINK_ROUTE, undefined);
  // Unique in the process: the kernel echoes the peer's removal to the peer's namespace with this number.
  const seq = nextNetlinkSeq();
  let answered: { err: Error | undefined } | undefined;
  const request = { type: RTM_DELLINK, flags: NLM_F_ACK | NLM_F_ECHO, body: deleteLinkBody(name) };
  const datagram = Buffer.concat(answers.expect(request, seq, (err) => (answered = { err })));
  let sendError: unknown;
  let sent = false;
  const sending = sendOnWorker(fd, datagram).then(
    () => {
      sent = true;
    },
    (err) => {
      sendError = err;
    },
  );
  const reading = (async (): Promise<void> => {
    const buf = Buffer.alloc(16384);
    for (;;) {
      // The kernel queues its answer before send returns: once sent, one more look must find it.
      const wasSent = sent;
      for (let n = recvNow(fd, buf); n !== undefined; n = recvNow(fd, buf)) answers.receive(buf.subarray(0, n), 0);
      if (answered) {
        if (answered.err) throw answered.err;
        return;
      }
      // The echo of our own link (the peer's goes to the peer's namespace) comes before the answer.
      if (answers.repliesOf(seq).some((m) => parseLink(m).name === name)) {
        await withNetlink(nsPath, (nl) => nl.getLink(name));
        return;
      }
      if (sendError) throw sendError;
      if (wasSent) throw new Error('the kernel sent the request no answer');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  // The socket stays open until both the worker and the reader are done with it (the worker maybe long after
  // this function has returned).
  void Promise.allSettled([sending, reading]).then(() => closeSync(fd));
  try {
    await reading;
    return true;
  } catch (err) {
    if (hasErrno(err, 'ENODEV')) return false;
    throw wrapError(`delete link ${name}${where}`, err);
  }
}

/** A raw rtnetlink socket in the namespace at nsPath, checked to be there by asking the kernel (SIOCGSKNS). */
function openDeleteSocket(nsPath: string | undefined): number {
  const [fd, netns] = inNetns(nsPath, () => [createNetlinkSocket(), threadNetnsKey()] as const);
  try {
    if (nsPath !== undefined && socketNetnsIdentity(fd) !== netns) {
      throw new CtnetError(ErrorCode.internal, `netlink socket for ${nsPath} was made in another namespace`);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}
