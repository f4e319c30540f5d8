/*
 * floor: the physical floor for HTTP/1.1 plaintext on this machine.
 *
 * One thread, non-blocking sockets, level-triggered epoll. It does no real
 * HTTP parsing: for every "\r\n\r\n" found in the bytes it reads it appends
 * one canned 200 response (Content-Length: 13) to the connection's output
 * and writes it back. The only other look at the request is whether its first
 * line ends in "HTTP/1.0": such a request gets "Connection: close" and the
 * connection is closed once the response is written, which is what a client
 * without keep-alive (ab without -k) waits for.
 *
 * No real server can be faster than this on the same machine: it is the
 * ceiling against which the other servers are given as ratios.
 *
 * usage: floor [PORT]   (listens on 127.0.0.1, default port 19010)
 * build: bench/build-peers.sh floor (gcc -O2)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)
#define MAX_EVENTS 256

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 13\r\n"
                           "\r\n"
                           "Hello, World!";
static const char RESP_CLOSE[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 13\r\n"
                                 "Connection: close\r\n"
                                 "\r\n"
                                 "Hello, World!";

struct conn {
    int fd;
    int closing;   /* close once out is drained */
    size_t in_len; /* bytes of an incomplete request kept from earlier reads */
    char *out;
    size_t out_len, out_off, out_cap;
    char in[IN_CAP];
};

static int ep;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void conn_close(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->out);
    free(c);
}

static int out_append(struct conn *c, const char *p, size_t n) {
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o)
            return -1;
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Write what is pending. Returns -1 on a dead connection, 0 otherwise. */
static int flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w > 0) {
            c->out_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    return 0;
}

/* Watch for input while nothing is pending, for output while something is. */
static void set_interest(struct conn *c) {
    struct epoll_event ev = {.data.ptr = c};
    ev.events = c->out_len ? EPOLLOUT : EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Is the request that starts at p (head of length n) an HTTP/1.0 one? */
static int is_http10(const char *p, size_t n) {
    const char *eol = memchr(p, '\r', n);
    return eol && eol - p >= 9 && memcmp(eol - 9, " HTTP/1.0", 9) == 0;
}

static void on_readable(struct conn *c) {
    ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_close(c);
        return;
    }
    size_t len = c->in_len + (size_t)r;
    size_t start = 0;
    for (;;) {
        char *end = memmem(c->in + start, len - start, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end - (c->in + start)) + 4;
        int close_after = is_http10(c->in + start, head);
        int rc = close_after ? out_append(c, RESP_CLOSE, sizeof RESP_CLOSE - 1)
                             : out_append(c, RESP, sizeof RESP - 1);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        start += head;
        if (close_after) {
            c->closing = 1;
            break;
        }
    }
    if (c->closing) {
        len = start; /* ignore anything after a closing request */
    } else if (start == 0 && len == IN_CAP) {
        conn_close(c); /* a 64 KiB head: not a client of this benchmark */
        return;
    }
    memmove(c->in, c->in + start, len - start);
    c->in_len = len - start;
    if (flush_out(c) < 0 || (c->closing && c->out_len == 0)) {
        conn_close(c);
        return;
    }
    if (c->out_len)
        set_interest(c);
}

static void on_writable(struct conn *c) {
    if (flush_out(c) < 0 || (c->closing && c->out_len == 0)) {
        conn_close(c);
        return;
    }
    if (c->out_len == 0)
        set_interest(c);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 19010;
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");

    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) { /* the listener */
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    /* malloc, not calloc: zeroing the 64 KiB buffer would
                     * cost more than the rest of a short connection */
                    struct conn *nc = malloc(sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->closing = 0;
                    nc->in_len = nc->out_len = nc->out_off = nc->out_cap = 0;
                    nc->out = NULL;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                on_writable(c);
            else
                on_readable(c); /* EPOLLIN, EPOLLHUP, EPOLLERR: read tells */
        }
    }
}
