#!/usr/bin/env -S TRUSTRUN_LAUNCHER=${MALLOC_ARENA_MAX},${MALLOC_MMAP_THRESHOLD_} MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4
// Memory settings for a long-running proxy, applied when this file is run as a program (as the
// installed `trustrun` command is): V8's young generation capped at 4 MiB per semi-space instead
// of 16, glibc's malloc with two arenas and large buffers (captured bodies) always mmap'd, so they
// go back to the system when freed. docs/benchmarks.md shows what each saves and costs. malloc
// reads its variables once, at start-up; they are put back as they were here (TRUSTRUN_LAUNCHER
// holds the caller's values), so programs started by `trustrun run` see the caller's environment.
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
