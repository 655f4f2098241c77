/**
 * The socket monitor: follows a process tree, reports its direct connections, evaluates them
 * against a policy, kills the tree on a `kill` verdict, and attributes a local TCP endpoint to
 * the process that owns it. Linux: procfs (or ss); other systems: lsof.
 */
export {
  decodeAddress,
  parseProcNet,
  parseProcNetFor,
  parseStat,
  readSocketTable,
  socketInodes,
  processExe,
  parentPid,
  processTree,
  allPids,
  findSocketOwner,
  isAlive,
  TCP_STATES,
  type SocketEntry,
  type ProcStat,
} from './procfs.js';
export { killTree } from './kill.js';
export { startMonitor } from './monitor.js';
export { parseSs, splitEndpoint } from './ss.js';
export { parseLsofF, lsofArgs } from './lsof.js';
export { ProcTreeTracker, parsePsTable } from './tree.js';
export {
  AddressNames,
  NameResolver,
  WhoisOrgs,
  isLocalAddress,
  isPrivateAddress,
  orgFor,
  systemWhois,
  whoisOrg,
} from './names.js';
export { ExeCache, ProcfsBackend, onPath } from './backends.js';
export type {
  BackendName,
  DnsFunctions,
  WhoisFunction,
  KillInfo,
  Monitor,
  MonitorEvent,
  MonitorOptions,
  MonitorPolicy,
  MonitorStats,
  OwnedSocket,
  Protocol,
  UpdateReason,
} from './types.js';
