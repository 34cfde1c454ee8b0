// The seccomp filter of every sandbox: allow by default, deny the syscalls that widen the kernel's
// attack surface or step outside the sandbox (Docker's default profile denies the same ones, by
// allowlist). Only the native ABI is allowed: 32-bit (int 0x80) and x32 calls hit the
// filter's bad-arch action (kill), so denied calls cannot be reached through another ABI.

const EPERM = 1;
const ENOSYS = 38;

/** Syscalls that fail with EPERM inside a sandbox. */
export const DENIED_SYSCALLS = [
  // mounts and filesystem views
  "mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree",
  "fsopen", "fsconfig", "fsmount", "fspick",
  // namespaces (clone's namespace flags are filtered below)
  "setns", "unshare",
  // kernel code, modules, reboot, swap
  "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
  "query_module", "get_kernel_syms", "reboot", "swapon", "swapoff", "uselib",
  // observability and program loading into the kernel
  "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie", "syslog", "acct",
  // keyrings
  "keyctl", "add_key", "request_key",
  // handles that bypass path checks
  "open_by_handle_at", "name_to_handle_at",
  // userfaultfd (exploit helper), io_uring (large, often exploited surface)
  "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
  // clocks, quotas, hardware access, legacy
  "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
  "quotactl", "quotactl_fd", "nfsservctl", "ustat", "sysfs", "_sysctl",
  "iopl", "ioperm", "vm86", "vm86old", "vhangup",
  // NUMA placement of other processes' memory
  "move_pages", "migrate_pages", "mbind", "set_mempolicy", "set_mempolicy_home_node",
] as const;

/** clone(2) flags that create namespaces; clone with any of them fails with EPERM. */
const CLONE_NS_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

export interface OciSeccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: Array<{
    names: string[];
    action: string;
    errnoRet?: number;
    args?: Array<{ index: number; value: number; valueTwo: number; op: string }>;
  }>;
}

function nativeArch(): string {
  switch (process.arch) {
    case "x64":
      return "SCMP_ARCH_X86_64";
    case "arm64":
      return "SCMP_ARCH_AARCH64";
    default:
      return `SCMP_ARCH_${process.arch.toUpperCase()}`;
  }
}

let cached: OciSeccomp | undefined;

export function seccompProfile(): OciSeccomp {
  if (cached) return cached;
  cached = {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: [nativeArch()],
    syscalls: [
      { names: [...DENIED_SYSCALLS], action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone3 passes flags in memory the filter cannot read: report ENOSYS so libc falls back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      ...CLONE_NS_FLAGS.map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
    ],
  };
  return cached;
}
