#ifndef STRATA_CFUSE_SHIM_H
#define STRATA_CFUSE_SHIM_H
// libfuse 3.14 (Debian 12): 314 enables the fuse_loop_cfg_* API.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
// The kernel's wire format, for the replies the single-threaded loop writes itself
// (ReaddirPlusReply). Its struct names do not clash with libfuse's.
#include <linux/fuse.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// fuse_file_info flags are bitfields; set them here so Swift does not depend on how the
// importer lays them out.
static inline void strata_fi_set_keep_cache(struct fuse_file_info *fi, int on) { fi->keep_cache = on ? 1 : 0; }
static inline void strata_fi_set_cache_readdir(struct fuse_file_info *fi, int on) { fi->cache_readdir = on ? 1 : 0; }
static inline void strata_fi_set_noflush(struct fuse_file_info *fi, int on) { fi->noflush = on ? 1 : 0; }

// Handing a live FUSE connection to another server (FuseServer+Handover.swift). The installed
// <linux/fuse.h> (7.38) predates both of these (kernel 6.9, protocol 7.40).
#define STRATA_FUSE_NOTIFY_RESEND 7
#define STRATA_FUSE_HAS_RESEND (1ULL << 39)
// A unique no request of the kernel's has: it counts up from 2 in steps of 2 and marks a
// resent request with bit 63. The reply to a replayed INIT carries it and the kernel drops
// it (ENOENT), which libfuse does not report.
#define STRATA_REPLAYED_INIT_UNIQUE 0x3ffffffffffffff0ULL

// Asks the kernel to queue again every request a server has read but not answered (a server
// that died, or stopped, holding them). 0 or -errno.
static inline int strata_notify_resend(int fd) {
    struct fuse_out_header header = { sizeof(struct fuse_out_header), STRATA_FUSE_NOTIFY_RESEND, 0 };
    ssize_t n = write(fd, &header, sizeof header);
    return n == (ssize_t)sizeof header ? 0 : -errno;
}

// Gives libfuse's session the INIT the connection's first server answered (its body, `init`,
// `length` bytes), so that it takes the connection as initialised: libfuse answers everything
// before INIT with EIO, and the kernel sends INIT once per connection.
static inline void strata_replay_init(struct fuse_session *se, const void *init, size_t length) {
    size_t total = sizeof(struct fuse_in_header) + length;
    char *request = calloc(1, total);
    if (request == NULL) return;
    struct fuse_in_header *header = (struct fuse_in_header *)request;
    header->len = (uint32_t)total;
    header->opcode = FUSE_INIT;
    header->unique = STRATA_REPLAYED_INIT_UNIQUE;
    memcpy(request + sizeof *header, init, length);
    struct fuse_buf buffer = { .size = total, .flags = 0, .mem = request, .fd = -1, .pos = 0 };
    fuse_session_process_buf(se, &buffer);
    free(request);
}

#endif
