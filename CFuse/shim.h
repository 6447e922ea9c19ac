#ifndef STRATA_CFUSE_SHIM_H
#define STRATA_CFUSE_SHIM_H
// libfuse 3.14 (Debian 12): 314 enables the fuse_loop_cfg_* API.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
// The kernel's wire format, for the replies the single-threaded loop writes itself
// (ReaddirPlusReply). Its struct names do not clash with libfuse's.
#include <linux/fuse.h>

// fuse_session_loop_mt is a macro (it picks a versioned symbol); Swift cannot import macros
// that expand to calls.
static inline int strata_session_loop_mt(struct fuse_session *se, struct fuse_loop_config *config) {
    return fuse_session_loop_mt(se, config);
}

// fuse_file_info flags are bitfields; set them here so Swift does not depend on how the
// importer lays them out.
static inline void strata_fi_set_keep_cache(struct fuse_file_info *fi, int on) { fi->keep_cache = on ? 1 : 0; }
static inline void strata_fi_set_cache_readdir(struct fuse_file_info *fi, int on) { fi->cache_readdir = on ? 1 : 0; }
static inline void strata_fi_set_noflush(struct fuse_file_info *fi, int on) { fi->noflush = on ? 1 : 0; }

#endif
