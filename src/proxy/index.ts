export { InterceptingProxy } from './server.js';
export {
  parseResolveRule,
  normalizeHost,
  Resolver,
  type ResolveRule,
  type Destination,
} from './resolve.js';
export { parseClientHello, type ClientHelloInfo } from './clienthello.js';
export {
  DEFAULT_LIMITS,
  type ProxyOptions,
  type ProxyDeps,
  type ProxyLimits,
  type FlowRecorder,
  type PolicyGate,
  type ContextSource,
  type ClientIdentity,
} from './types.js';
