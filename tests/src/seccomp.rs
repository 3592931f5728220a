//! A seccomp filter that blocks io_uring in a child process, as container runtimes do.
//!
//! Docker 25+, containerd 2.0 and (reportedly) AWS Fargate refuse the io_uring system calls;
//! a test installs the same refusal in `pre_exec` so that the real pyrite binary meets it.

/// Which io_uring calls to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail with ENOSYS, like
    /// Docker's and podman's default profiles.
    AllIoUring,
    /// Only `io_uring_enter` fails (EPERM): rings can be created but never used. monoio would
    /// pick io_uring and spin; pyrite's self-test must catch it.
    EnterOnly,
}

// Same numbers on x86_64 and aarch64 (asm-generic).
const NR_IO_URING_SETUP: u32 = 425;
const NR_IO_URING_ENTER: u32 = 426;
const NR_IO_URING_REGISTER: u32 = 427;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

/// A compiled filter program.
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

impl Filter {
    pub fn new(block: Block) -> Filter {
        let (calls, errno): (&[u32], i32) = match block {
            Block::AllIoUring => (&[NR_IO_URING_SETUP, NR_IO_URING_ENTER, NR_IO_URING_REGISTER], libc::ENOSYS),
            Block::EnterOnly => (&[NR_IO_URING_ENTER], libc::EPERM),
        };
        let k = calls.len() as u8;
        let mut program = vec![
            stmt(BPF_LD_W_ABS, OFFSET_ARCH),
            libc::sock_filter { code: BPF_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH },
            stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
            stmt(BPF_LD_W_ABS, OFFSET_NR),
        ];
        for (i, &nr) in calls.iter().enumerate() {
            // On a match jump over the remaining comparisons and the ALLOW to the ERRNO return.
            program.push(libc::sock_filter { code: BPF_JEQ_K, jt: k - i as u8, jf: 0, k: nr });
        }
        program.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
        program.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | errno as u32));
        Filter { program }
    }

    /// Installs the filter on the calling thread (in a child, between fork and exec).
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; PR_SET_SECCOMP reads `prog`, which
        // points at `self.program`, alive for the duration of the call.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
