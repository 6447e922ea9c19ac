// Linux calls and constants that Swift's Glibc module does not import: <sys/xattr.h> is not in
// it, and renameat2, fallocate, pipe2, statx, O_PATH, AT_EMPTY_PATH... are declared only under
// _GNU_SOURCE, which it is built without. Only StrataSystem imports this module (its LinuxCalls
// wraps each call); every other module goes through LinuxCalls.
//
// No _GNU_SOURCE here: the glibc headers would then define some types differently (fd_set's
// field names) from Swift's Glibc module, and the two modules could not be imported together.
// So the _GNU_SOURCE-only calls go through syscall(2), and the constants glibc hides come from
// the kernel's uapi headers where those do not clash with glibc's, else by their ABI value.
// The names are prefixed so nothing here competes with Glibc's declarations on the Swift side.
#ifndef STRATA_CLINUX_SHIM_H
#define STRATA_CLINUX_SHIM_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/stat.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

// <fcntl.h> defines the __O_* values whatever the feature macros; O_* only under _GNU_SOURCE.
static const int32_t strata_O_PATH = __O_PATH;
static const int32_t strata_O_NOATIME = __O_NOATIME;
static const int32_t strata_O_TMPFILE = __O_TMPFILE | O_DIRECTORY;
// <linux/fcntl.h> and <linux/fs.h> would clash with glibc's struct flock and <sys/mount.h>.
static const int32_t strata_AT_EMPTY_PATH = 0x1000;          // linux/fcntl.h
static const int32_t strata_AT_STATX_FORCE_SYNC = 0x2000;    // linux/fcntl.h
static const uint32_t strata_RENAME_NOREPLACE = 1 << 0;      // linux/fs.h
static const uint32_t strata_RENAME_EXCHANGE = 1 << 1;
static const uint32_t strata_RENAME_WHITEOUT = 1 << 2;
static const int16_t strata_POSIX_SPAWN_SETSID = 0x80;       // <spawn.h> under _GNU_SOURCE
static const int32_t strata_XATTR_CREATE = XATTR_CREATE;
static const int32_t strata_XATTR_REPLACE = XATTR_REPLACE;
static const int32_t strata_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
static const int32_t strata_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
static const uint32_t strata_STATX_BASIC_STATS = STATX_BASIC_STATS;
static const int strata_statx_size = sizeof(struct statx);

static inline int strata_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                                   unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

static inline int strata_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return (int)syscall(SYS_fallocate, fd, mode, (off_t)offset, (off_t)length);
}

static inline int strata_pipe2(int fds[2], int flags) {
    return (int)syscall(SYS_pipe2, fds, flags);
}

// statx(2) into a caller's buffer of at least sizeof(struct statx) bytes.
static inline int strata_statx(int dirfd, const char *path, int flags, unsigned int mask, void *buffer) {
    return (int)syscall(SYS_statx, dirfd, path, flags, mask, (struct statx *)buffer);
}

// Credentials of the calling thread alone: the raw system calls (glibc's wrappers change
// every thread of the process).
static inline int strata_thread_setresuid(uint32_t r, uint32_t e, uint32_t s) { return (int)syscall(SYS_setresuid, r, e, s); }
static inline int strata_thread_setresgid(uint32_t r, uint32_t e, uint32_t s) { return (int)syscall(SYS_setresgid, r, e, s); }
static inline int strata_thread_setgroups(size_t count, const uint32_t *groups) {
    return (int)syscall(SYS_setgroups, count, groups);
}

static inline ssize_t strata_getxattr(const char *path, const char *name, void *value, size_t size) {
    return getxattr(path, name, value, size);
}
static inline ssize_t strata_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}
static inline ssize_t strata_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return fgetxattr(fd, name, value, size);
}
static inline int strata_setxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
    return setxattr(path, name, value, size, flags);
}
static inline int strata_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
    return lsetxattr(path, name, value, size, flags);
}
static inline int strata_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags) {
    return fsetxattr(fd, name, value, size, flags);
}
static inline ssize_t strata_listxattr(const char *path, char *list, size_t size) {
    return listxattr(path, list, size);
}
static inline ssize_t strata_llistxattr(const char *path, char *list, size_t size) {
    return llistxattr(path, list, size);
}
static inline ssize_t strata_flistxattr(int fd, char *list, size_t size) {
    return flistxattr(fd, list, size);
}
static inline int strata_removexattr(const char *path, const char *name) {
    return removexattr(path, name);
}
static inline int strata_lremovexattr(const char *path, const char *name) {
    return lremovexattr(path, name);
}
static inline int strata_fremovexattr(int fd, const char *name) {
    return fremovexattr(fd, name);
}

// Calls newer than glibc's wrappers, by number: numbers from 424 on are the same on every
// architecture. fchmodat2 is Linux 6.6, the *xattrat family 6.13; older kernels say ENOSYS.
// They act on a name relative to a descriptor (an O_PATH one included), so nothing needs
// /proc/self/fd to reach an object only a descriptor holds.
struct strata_xattr_args { uint64_t value; uint32_t size; uint32_t flags; };

static inline int strata_fchmodat2(int dirfd, const char *path, unsigned int mode, int flags) {
    return (int)syscall(452, dirfd, path, mode, flags);
}
static inline int strata_setxattrat(int dirfd, const char *path, int at_flags, const char *name,
                                    const void *value, size_t size, int flags) {
    struct strata_xattr_args args = { (uint64_t)(uintptr_t)value, (uint32_t)size, (uint32_t)flags };
    return (int)syscall(463, dirfd, path, at_flags, name, &args, sizeof args);
}
static inline ssize_t strata_getxattrat(int dirfd, const char *path, int at_flags, const char *name,
                                        void *value, size_t size) {
    struct strata_xattr_args args = { (uint64_t)(uintptr_t)value, (uint32_t)size, 0 };
    return (ssize_t)syscall(464, dirfd, path, at_flags, name, &args, sizeof args);
}
static inline ssize_t strata_listxattrat(int dirfd, const char *path, int at_flags, char *list, size_t size) {
    return (ssize_t)syscall(465, dirfd, path, at_flags, list, size);
}
static inline int strata_removexattrat(int dirfd, const char *path, int at_flags, const char *name) {
    return (int)syscall(466, dirfd, path, at_flags, name);
}

// Unix sockets that pass descriptors (SCM_RIGHTS): the CMSG_* macros are not importable into
// Swift, so one message with at most one descriptor is built here. SOCK_SEQPACKET keeps
// message boundaries; MSG_NOSIGNAL turns a closed peer into EPIPE rather than SIGPIPE.
static inline int strata_socketpair_seqpacket(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}
static inline ssize_t strata_send_with_fd(int sock, const void *buf, size_t len, int fd) {
    struct iovec iov = { (void *)buf, len };
    union { char bytes[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}
// *fd is the descriptor received (close-on-exec), or -1.
static inline ssize_t strata_recv_with_fd(int sock, void *buf, size_t len, int *fd) {
    struct iovec iov = { buf, len };
    union { char bytes[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *fd = -1;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int received[4];
        memcpy(received, CMSG_DATA(c), count * sizeof(int));
        for (size_t i = 0; i < count; i++) {
            if (*fd < 0) *fd = received[i]; else close(received[i]);  // only one is expected
        }
    }
    return n;
}
// A sequenced-packet socket and the address of `path` (-1, ENAMETOOLONG when it does not fit).
static inline int strata_unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(address->sun_path, path);
    return socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
}
static inline int strata_unix_listen(const char *path) {
    struct sockaddr_un address;
    int fd = strata_unix_socket(path, &address);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 8) != 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    return fd;
}
static inline int strata_unix_connect(const char *path) {
    struct sockaddr_un address;
    int fd = strata_unix_socket(path, &address);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    return fd;
}
// A receive that waits at most `seconds` (then EAGAIN): a peer that connects and says nothing
// must not hold up the one thread of a supervisor.
static inline int strata_set_receive_timeout(int fd, int seconds) {
    struct timeval timeout = { seconds, 0 };
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}
static inline int strata_accept(int listener) {  // accept4 is _GNU_SOURCE-only
    int fd = accept(listener, NULL, NULL);
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

// signalfd(2): the signals in `mask` (a sigset_t) become readable records on a descriptor.
static inline int strata_signalfd(const void *mask) {
    return signalfd(-1, (const sigset_t *)mask, SFD_CLOEXEC);
}
static inline int strata_signalfd_record_size(void) { return (int)sizeof(struct signalfd_siginfo); }

#endif
