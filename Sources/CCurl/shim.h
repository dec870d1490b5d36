// curl_easy_setopt/getinfo are variadic: Swift needs one typed wrapper per argument kind.
#include <curl/curl.h>

typedef size_t (*goesfs_curl_data_fn)(char *, size_t, size_t, void *);
typedef int (*goesfs_curl_xferinfo_fn)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
typedef int (*goesfs_curl_prereq_fn)(void *, char *, char *, int, int);

static inline CURLcode goesfs_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode goesfs_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode goesfs_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode goesfs_curl_set_data_fn(CURL *h, CURLoption o, goesfs_curl_data_fn f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode goesfs_curl_set_xferinfo_fn(CURL *h, goesfs_curl_xferinfo_fn f) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }
static inline CURLcode goesfs_curl_set_prereq_fn(CURL *h, goesfs_curl_prereq_fn f) { return curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, f); }
static inline CURLcode goesfs_curl_get_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode goesfs_curl_get_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode goesfs_curl_get_offset(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
