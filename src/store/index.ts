/**
 * The store: SQLite audit log with sealed payloads. Other modules use `openStore()` and the
 * `Store` interface; the sealing functions are exported for tests and tools.
 */
export { openStore } from './store.js';
export type {
  BodyField,
  CapturedBody,
  ConnectionInput,
  ConnectionMode,
  ConnectionPatch,
  ConnectionQuery,
  ConnectionRow,
  FindingInput,
  FindingQuery,
  FindingRow,
  FindingSeverity,
  FindingVerdictInput,
  HeaderList,
  MonitorEventInput,
  MonitorEventPatch,
  MonitorEventQuery,
  MonitorEventRow,
  MonitorProtocol,
  Page,
  PageQuery,
  RequestCompletion,
  RequestDetail,
  RequestInput,
  RequestQuery,
  RequestRow,
  ScanInput,
  ScanQuery,
  ScanRow,
  SessionCounts,
  SessionDetail,
  SessionEnd,
  SessionInput,
  SessionRow,
  Store,
  StoreErrorListener,
  StoreOptions,
  StoreStats,
  TimeRange,
  ViolationInput,
  ViolationQuery,
  ViolationRow,
} from './types.js';
export { CONNECTION_MODES, FINDING_SEVERITIES, MONITOR_PROTOCOLS } from './types.js';
export { redactFinding } from './scans.js';
export {
  KEY_ID_BYTES,
  NONCE_BYTES,
  SEAL_OVERHEAD,
  SEAL_VERSION,
  associatedData,
  loadSealing,
  newDataKey,
  openValue,
  sealValue,
  sealedKeyId,
  type DataKey,
  type KeyLookup,
  type SealContext,
} from './seal.js';
export {
  DEFAULT_KDF,
  MASTER_KEY_FILE,
  PASSPHRASE_FILE,
  loadMasterKey,
  unwrapDataKey,
  wrapDataKey,
  type MasterKey,
} from './keys.js';
export { argon2id, type Argon2idParams } from './argon2.js';
export { MIGRATIONS, appliedVersions, migrate, type Migration } from './migrations.js';
export { hostFilter } from './reads.js';

export * from './redact/index.js';
