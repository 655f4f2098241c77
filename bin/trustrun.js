#!/bin/sh
":" //; export TRUSTRUN_LAUNCHER="${MALLOC_ARENA_MAX-},${MALLOC_MMAP_THRESHOLD_-}" MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072; exec node --max-semi-space-size=2 --expose-gc "$0" "$@"
// The line above is for sh (this file is run by /bin/sh first, then by node): it starts node
// with the memory settings a long-running proxy wants; for node it is a string and a comment.
// V8's young generation is capped at 2 MiB per semi-space instead of 16; glibc's malloc gets
// two arenas and always maps large buffers (captured bodies) so that they go back to the system
// when freed; --expose-gc lets the proxy free relayed body chunks as they pile up (Reclaimer).
// docs/architecture.md says why and what each saves. malloc reads its variables once, at
// start-up; they are put back as they were here (TRUSTRUN_LAUNCHER holds the caller's values),
// so programs started by `trustrun run` see the caller's environment.
const launcher = process.env.TRUSTRUN_LAUNCHER;
if (launcher !== undefined && /^[^,]*,[^,]*$/.test(launcher)) {
  const [arenas, threshold] = launcher.split(',');
  const restore = (name, value) => {
    if (value) process.env[name] = value;
    else delete process.env[name];
  };
  restore('MALLOC_ARENA_MAX', arenas);
  restore('MALLOC_MMAP_THRESHOLD_', threshold);
  delete process.env.TRUSTRUN_LAUNCHER;
}
await import('../dist/cli/main.js');
