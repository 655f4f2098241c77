/** The local CA: creation and loading, leaf minting for TLS interception, client environment. */
export { loadOrCreateCa, type CertificateAuthority } from './authority.js';
export {
  LeafMinter,
  type LeafMinterOptions,
  type MinterStats,
  type SniCallback,
} from './minter.js';
export {
  caEnvironment,
  formatEnv,
  BUNDLE_VARIABLES,
  PROXY_VARIABLES,
  SHELLS,
  type CaEnvironmentOptions,
  type ShellKind,
} from './env.js';
export { exportCa, type ExportFormat } from './export.js';
export { normalizeHost, type NormalizedHost } from './hostname.js';
export { MAX_LEAF_DAYS } from './leaf.js';
export {
  buildTrustStore,
  caAlias,
  ensureJavaTrustStore,
  exportCaPkcs12,
  javaToolOptions,
  type JavaTrustStore,
} from './java.js';
export {
  runEnvironment,
  withNodePreload,
  NODE_PRELOAD,
  type RunEnvironment,
  type RunEnvironmentOptions,
} from './runenv.js';
export {
  detectTrustSystem,
  installCa,
  installedName,
  uninstallCa,
  TRUST_SYSTEMS,
  type InstallOptions,
  type TrustChange,
  type TrustSystem,
} from './install.js';
