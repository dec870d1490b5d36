/* delay_proxy: a TCP proxy that makes a fast local endpoint look like a far one (bench/run --latency).
 *
 * Every chunk read from one side is stamped when it arrives and written to the other side RTT/2
 * later, so requests stay pipelined (a stamp per chunk, not a sleep per request). On top, per
 * connection and direction:
 *  - connection setup: what the client sends earlier than one RTT after accept waits until then
 *    (the client's kernel finished the handshake over the veth at once; a real one costs an RTT);
 *  - TCP slow start: at most cwnd bytes per emulated RTT, cwnd starting at 10 segments and doubling
 *    each round the window was used, back to 10 segments after an idle RTO (Linux's default
 *    tcp_slow_start_after_idle=1);
 *  - a pacing cap of RATE MB/s (10^6 bytes/s): a token bucket with a 64 KiB burst.
 * The FIN is delayed like data. The TCP the kernels run (client <-> proxy over the veth, proxy <->
 * nginx on loopback) has microsecond RTTs; the model above supplies what the path would cost.
 *
 * usage: delay_proxy LISTEN_IP LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT RTT_MS RATE_MBPS SLOW_START(0|1) PORT_FILE
 * (LISTEN_PORT 0: any free port, written to PORT_FILE). Single-threaded epoll; C because an asyncio
 * version topped out near 400 MB/s total on this machine, below 8 connections at 90 MB/s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSS 1448
#define INIT_CWND (10 * MSS)
#define MAX_CWND (64 << 20)
#define CHUNK (256 << 10)
#define PIECE (64 << 10)
#define QUEUE_CAP (16 << 20) /* bytes held per direction before reading stops (a receive window) */

static double g_rtt, g_rate;
static int g_slow_start;
static volatile sig_atomic_t g_stop;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct model {
    double not_before, tokens_t, burst, round_start, last_send, rto;
    long cwnd, round_bytes;
};

static void model_init(struct model *m, double not_before) {
    memset(m, 0, sizeof *m);
    m->not_before = not_before;
    m->burst = g_rate > 0 ? PIECE / g_rate : 0;
    m->cwnd = INIT_CWND;
    m->round_start = -1;
    m->last_send = -1e9;
    m->rto = (g_rtt * 2 > 0.2 ? g_rtt * 2 : 0.2) + g_rtt;
}

static long model_piece(struct model *m) {
    if (!g_slow_start) return PIECE;
    long c = m->cwnd < PIECE ? m->cwnd : PIECE;
    return c < MSS ? MSS : c;
}

/* When n bytes that reached the proxy at `arrival` reach the other side. */
static double model_release(struct model *m, double arrival, long n) {
    double t = arrival;
    if (t < m->not_before) t = m->not_before;
    if (t < m->last_send) t = m->last_send; /* in order */
    if (g_slow_start) {
        if (t - m->last_send > m->rto) { m->cwnd = INIT_CWND; m->round_start = -1; m->round_bytes = 0; }
        if (m->round_start < 0 || t >= m->round_start + g_rtt) {
            if (m->round_start >= 0 && m->round_bytes >= m->cwnd / 2 && m->cwnd < MAX_CWND) m->cwnd *= 2;
            m->round_start = t;
            m->round_bytes = 0;
        } else if (m->round_bytes + n > m->cwnd) { /* window full: wait for its ACKs */
            t = m->round_start + g_rtt;
            if (m->cwnd < MAX_CWND) m->cwnd *= 2;
            m->round_start = t;
            m->round_bytes = 0;
        }
        m->round_bytes += n;
    }
    if (g_rate > 0) {
        if (t < m->tokens_t - m->burst) t = m->tokens_t - m->burst;
        m->tokens_t = (m->tokens_t > t ? m->tokens_t : t) + n / g_rate;
    }
    m->last_send = t;
    return t + g_rtt / 2;
}

struct piece {
    struct piece *next;
    double when;
    long len, off; /* len 0: the FIN */
    char data[];
};

struct dir {
    int src, dst;
    struct piece *head, *tail;
    long queued;
    int src_eof, done, blocked; /* blocked: dst said EAGAIN */
    struct model m;
};

struct conn {
    int cfd, ufd;
    struct dir up, down; /* up: client -> server */
    unsigned cev, uev;   /* registered epoll events */
    struct conn *next;
    int dead;
};

static struct conn *g_conns;
static int g_ep;

static void push(struct dir *d, const char *buf, long len, double when) {
    struct piece *p = malloc(sizeof *p + (len > 0 ? len : 0));
    if (!p) { perror("malloc"); exit(1); }
    p->next = NULL; p->when = when; p->len = len; p->off = 0;
    if (len > 0) memcpy(p->data, buf, len);
    if (d->tail) d->tail->next = p; else d->head = p;
    d->tail = p;
    d->queued += len;
}

static char g_buf[CHUNK];

/* Reads what is there (level-triggered: one read per wakeup is enough). */
static int do_read(struct dir *d) {
    ssize_t n = read(d->src, g_buf, sizeof g_buf);
    double t = now();
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (n == 0) {
        d->src_eof = 1;
        push(d, NULL, 0, model_release(&d->m, t, 0));
        return 0;
    }
    for (long off = 0; off < n;) {
        long k = model_piece(&d->m);
        if (k > n - off) k = n - off;
        push(d, g_buf + off, k, model_release(&d->m, t, k));
        off += k;
    }
    return 0;
}

/* Writes every piece that is due; returns -1 on a fatal error. */
static int do_write(struct dir *d, double t) {
    while (d->head && d->head->when <= t) {
        struct piece *p = d->head;
        if (p->len == 0) {
            shutdown(d->dst, SHUT_WR);
            d->done = 1;
        } else {
            ssize_t w = write(d->dst, p->data + p->off, p->len - p->off);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) { d->blocked = 1; return 0; }
                return -1;
            }
            p->off += w;
            d->queued -= w;
            if (p->off < p->len) { d->blocked = 1; return 0; }
        }
        d->head = p->next;
        if (!d->head) d->tail = NULL;
        free(p);
    }
    d->blocked = 0;
    return 0;
}

static void free_dir(struct dir *d) {
    while (d->head) { struct piece *p = d->head; d->head = p->next; free(p); }
    d->tail = NULL;
}

static void set_events(int fd, unsigned *cur, unsigned want, struct conn *c) {
    if (*cur == want) return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, fd, &ev);
    *cur = want;
}

static void update(struct conn *c) {
    unsigned cw = 0, uw = 0;
    if (!c->up.src_eof && c->up.queued < QUEUE_CAP) cw |= EPOLLIN;
    if (!c->down.src_eof && c->down.queued < QUEUE_CAP) uw |= EPOLLIN;
    if (c->down.blocked) cw |= EPOLLOUT;
    if (c->up.blocked) uw |= EPOLLOUT;
    set_events(c->cfd, &c->cev, cw, c);
    set_events(c->ufd, &c->uev, uw, c);
}

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void on_stop(int sig) { (void)sig; g_stop = 1; }

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s LISTEN_IP LISTEN_PORT UPSTREAM_IP UPSTREAM_PORT RTT_MS RATE_MBPS SLOW_START PORT_FILE\n", argv[0]);
        return 64;
    }
    g_rtt = atof(argv[5]) / 1000.0;
    g_rate = atof(argv[6]) * 1e6;
    g_slow_start = atoi(argv[7]);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);

    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
    if (inet_pton(AF_INET, argv[1], &la.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &ua.sin_addr) != 1) {
        fprintf(stderr, "delay_proxy: bad address\n");
        return 64;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&la, sizeof la) || listen(lfd, 1024)) { perror("delay_proxy: bind/listen"); return 1; }
    socklen_t sl = sizeof la;
    getsockname(lfd, (struct sockaddr *)&la, &sl);
    nonblock(lfd);
    FILE *pf = fopen(argv[8], "w");
    if (!pf) { perror(argv[8]); return 1; }
    fprintf(pf, "%d\n", ntohs(la.sin_port));
    fclose(pf);
    fprintf(stderr, "delay_proxy: %s:%d -> %s:%s, rtt %.1f ms, rate %s MB/s per connection, slow start %s\n",
            argv[1], ntohs(la.sin_port), argv[3], argv[4], g_rtt * 1000, g_rate > 0 ? argv[6] : "unlimited",
            g_slow_start ? "on" : "off");

    g_ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
    long accepted = 0;
    struct epoll_event evs[256];

    while (!g_stop) {
        /* Timeout: the earliest due piece whose destination is not blocked. */
        double t = now(), next = t + 1.0;
        for (struct conn *c = g_conns; c; c = c->next) {
            struct dir *ds[2] = {&c->up, &c->down};
            for (int i = 0; i < 2; i++)
                if (ds[i]->head && !ds[i]->blocked && ds[i]->head->when < next) next = ds[i]->head->when;
        }
        int timeout = next <= t ? 0 : (int)((next - t) * 1000.0 + 0.999);
        if (timeout > 0 && next - t < 0.002) {
            /* epoll's millisecond timeout: sleep sub-millisecond remainders precisely. */
            struct timespec ts = {0, (long)((next - t) * 1e9)};
            nanosleep(&ts, NULL);
            timeout = 0;
        }
        int n = epoll_wait(g_ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int cfd;
                while ((cfd = accept(lfd, NULL, NULL)) >= 0) {
                    int ufd = socket(AF_INET, SOCK_STREAM, 0);
                    if (connect(ufd, (struct sockaddr *)&ua, sizeof ua)) { close(ufd); close(cfd); continue; }
                    nonblock(cfd); nonblock(ufd);
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->cfd = cfd; nc->ufd = ufd;
                    nc->up.src = cfd; nc->up.dst = ufd;
                    nc->down.src = ufd; nc->down.dst = cfd;
                    double ta = now();
                    model_init(&nc->up.m, ta + g_rtt); /* the handshake's round trip */
                    model_init(&nc->down.m, 0);
                    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = nc}, e2 = e1;
                    epoll_ctl(g_ep, EPOLL_CTL_ADD, cfd, &e1);
                    epoll_ctl(g_ep, EPOLL_CTL_ADD, ufd, &e2);
                    nc->cev = nc->uev = EPOLLIN;
                    nc->next = g_conns;
                    g_conns = nc;
                    accepted++;
                }
                continue;
            }
            if (c->dead) continue;
            /* Which fd fired is not in the event (data.ptr is the connection): try both sides. */
            unsigned e = evs[i].events;
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (c->cev & EPOLLIN) if (do_read(&c->up) < 0) c->dead = 1;
                if (!c->dead && (c->uev & EPOLLIN)) if (do_read(&c->down) < 0) c->dead = 1;
            }
            if (e & EPOLLOUT) { c->up.blocked = c->down.blocked = 0; }
        }
        t = now();
        struct conn **pp = &g_conns;
        while (*pp) {
            struct conn *c = *pp;
            if (!c->dead && (do_write(&c->up, t) < 0 || do_write(&c->down, t) < 0)) c->dead = 1;
            if (c->dead || (c->up.done && c->down.done)) {
                close(c->cfd); close(c->ufd);
                free_dir(&c->up); free_dir(&c->down);
                *pp = c->next;
                free(c);
                continue;
            }
            update(c);
            pp = &c->next;
        }
    }
    fprintf(stderr, "delay_proxy: stopped after %ld connections\n", accepted);
    return 0;
}
