/** The request/response netlink socket lives in core/ (iptables/ speaks nfnetlink through it too). */
export { NetlinkError, type RequestSocket, RtnlSocket } from '../core/index.js';
