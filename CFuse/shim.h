#ifndef STRATA_CFUSE_SHIM_H
#define STRATA_CFUSE_SHIM_H
// libfuse 3.14 (Debian 12): 314 enables the fuse_loop_cfg_* API.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#endif
