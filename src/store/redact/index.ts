/**
 * Redaction for display. Stored records keep everything; every read path (API, web UI, CLI,
 * logs, HAR export) passes URLs, headers and bodies through these pure functions first.
 * See docs/redaction.md for what is masked and what is not detected.
 */
export type { Redaction } from './types.js';
export { marker, isMarker } from './types.js';
export { redactHeaders } from './headers.js';
export { redactUrl } from './url.js';
export { redactText } from './text.js';
export { redactBody, type RedactBodyOptions, type RedactedBody } from './body.js';
export { DEFAULT_MAX_DECODED_BYTES } from './decode.js';
export { secretHeaderKind, secretKeyKind, phiKeyKind, type KeyPlace } from './keys.js';
export {
  absoluteUrl,
  originOf,
  redactCommand,
  redactRequest,
  type RedactedRequest,
} from './view.js';
