// What Swift cannot reach in libfuse directly: versioned macros and bitfields.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* libfuse's own messages, written with one write(2) each and cancellation off: through stdio, a
   worker cancelled at loop exit inside fprintf would keep stderr's lock and hang the next writer. */
static void goesfs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap) {
    (void)level;
    char line[2048];
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    if (n > 0) { ssize_t written = write(2, line, (size_t)n); (void)written; }
    pthread_setcancelstate(old, NULL);
}
static inline void goesfs_route_fuse_log(void) { fuse_set_log_func(goesfs_fuse_log); }

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

/* Replies to a read with bytes of a file, spliced by the kernel when it can (no copy through us). */
static inline int goesfs_reply_file_range(fuse_req_t req, int fd, off_t offset, size_t size) {
    struct fuse_bufvec buffers = FUSE_BUFVEC_INIT(size);
    buffers.buf[0].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buffers.buf[0].fd = fd;
    buffers.buf[0].pos = offset;
    return fuse_reply_data(req, &buffers, FUSE_BUF_SPLICE_MOVE);
}
static inline void goesfs_want_splice(struct fuse_conn_info *conn) {
    if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
    if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
}
