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
  readStat,
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
export { killTree, killPids } from './kill.js';
export { startMonitor } from './monitor.js';
export { parseSs, splitEndpoint } from './ss.js';
export { parseLsofF, lsofArgs } from './lsof.js';
export { ProcTreeTracker, PsTreeTracker, parsePsTable, type TreeTracker } from './tree.js';
export { NameResolver, orgFor, isLocalAddress, ORG_RANGES, ORG_SUFFIXES } from './names.js';
export {
  ExeCache,
  LsofBackend,
  ProcfsBackend,
  SsBackend,
  chooseBackend,
  onPath,
  procfsUsable,
  type SocketBackend,
} from './backends.js';
export type {
  BackendName,
  DnsFunctions,
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
