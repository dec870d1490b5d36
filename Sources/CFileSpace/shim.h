// Freeing a cache file's blocks in place (eviction of parts of an open object): fallocate with
// FALLOC_FL_PUNCH_HOLE needs _GNU_SOURCE, which Swift's Glibc module is not built with.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>

static inline int goesfs_punch_hole(int fd, long long offset, long long length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}
