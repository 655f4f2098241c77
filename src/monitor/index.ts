export {
  decodeAddress,
  parseProcNet,
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
} from './procfs.js';
export { killTree } from './kill.js';
