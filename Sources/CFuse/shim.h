// What Swift cannot reach in libfuse directly: versioned macros and bitfields.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <errno.h>

static inline int goesfs_session_loop_mt(struct fuse_session *se, struct fuse_loop_config *cfg) {
    return fuse_session_loop_mt(se, cfg);
}
static inline void goesfs_fi_set_direct_io(struct fuse_file_info *fi, int on) { fi->direct_io = on; }
static inline void goesfs_fi_set_keep_cache(struct fuse_file_info *fi, int on) { fi->keep_cache = on; }
static inline int goesfs_fi_flags(const struct fuse_file_info *fi) { return fi->flags; }
static inline struct fuse_session *goesfs_session_new(struct fuse_args *args,
        const struct fuse_lowlevel_ops *ops, void *userdata) {
    return fuse_session_new(args, ops, sizeof(*ops), userdata);
}
