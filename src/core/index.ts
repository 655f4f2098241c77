export * from './types.js';
export * from './errors.js';
export * from './logger.js';
export * from './paths.js';
export * from './ids.js';
export * from './version.js';
export * from './text.js';
