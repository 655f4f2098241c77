/**
 * What a root command of `run --isolate` must not keep, so that it cannot leave its namespace:
 * setns(2) back to trustrun's (CAP_SYS_ADMIN), moving interfaces to it (CAP_NET_ADMIN), driving
 * a process outside (CAP_SYS_PTRACE), or the kernel itself (modules, raw memory, BPF, perf).
 * Names as setpriv(1) takes them, and their bit numbers in /proc/PID/status. isolate.ts drops
 * them; isolated.ts checks that they are gone. (No imports: isolated.ts starts quickly.)
 */
export const ESCAPE_CAPS: Readonly<Record<string, number>> = {
  net_admin: 12,
  sys_module: 16,
  sys_rawio: 17,
  sys_ptrace: 19,
  sys_admin: 21,
  perfmon: 38,
  bpf: 39,
};
