/* Guest-side helper for tests/virtio/virtio-test.sh, built on the host with
 * riscv64-linux-gnu-gcc -static and handed to the guest on a read-only
 * virtio-blk disk (busybox has no vsock, no BLKDISCARD/BLKZEROOUT tool, and
 * its nc quits when its standard input ends).
 *
 *   guest-tool agent PORT      command server on vsock PORT (see below);
 *                              prints "VSOCK-AGENT-READY PORT" when listening
 *   guest-tool agent-tty DEV   the same protocol on a tty (e.g. /dev/hvc0)
 *   guest-tool connect CID PORT MESSAGE
 *                              vsock: send MESSAGE\n, print the reply until EOF
 *   guest-tool listen PORT     vsock: accept one connection, read one line,
 *                              answer "echo: <line>", close
 *   guest-tool echo PORT       vsock: accept one connection, copy everything
 *                              back until EOF, close
 *   guest-tool tcp-recv PORT   TCP: accept one connection, copy it to stdout
 *   guest-tool tcp-send ADDR PORT
 *                              TCP: send stdin, half-close, wait for EOF
 *   guest-tool discard DEV OFFSET LENGTH     ioctl BLKDISCARD
 *   guest-tool zeroout DEV OFFSET LENGTH     ioctl BLKZEROOUT
 *
 * Agent protocol (one or more requests per connection, or on the tty):
 *   host:  RUN <base64 of a shell command>\n
 *   guest: OUT <base64 of a piece of output>\n ...   (stdout and stderr)
 *          EXIT <status>\n
 * The command runs as `sh -c CMD` with stdin from /dev/null. The agent
 * reads its output until end of file, so background jobs started by a
 * command must redirect their output. On vsock every connection is served
 * by its own process, so commands may run concurrently.
 *
 * Exit status 0 on success; errors are printed with perror. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/fs.h>
#include <linux/vm_sockets.h>

static int readline(int fd, char *buf, int max) {
    int n = 0;
    while (n < max - 1) {
        char c;
        int r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        buf[n++] = c;
        if (c == '\n') break;
    }
    buf[n] = 0;
    return n;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= w;
    }
    return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    return o;
}

/* Decodes in place; returns the length or -1 on a bad character. */
static long b64_decode(char *s) {
    long o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (char *p = s; *p && *p != '\n' && *p != '\r'; p++) {
        if (*p == '=') break;
        const char *k = strchr(B64, *p);
        if (!k || !*p) return -1;
        acc = acc << 6 | (uint32_t)(k - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            s[o++] = (char)(acc >> bits & 0xff);
        }
    }
    s[o] = 0;
    return o;
}

/* Runs one command, streaming its output as OUT lines, then EXIT. */
static int run_one(int out, char *cmd) {
    int p[2];
    if (pipe(p)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        if (out > 2) close(out);
        signal(SIGCHLD, SIG_DFL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    unsigned char buf[3 * 1024];
    char line[4 * 1024 + 8];
    for (;;) {
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        memcpy(line, "OUT ", 4);
        size_t l = 4 + b64_encode(buf, n, line + 4);
        line[l++] = '\n';
        if (write_all(out, line, l)) break;
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    int l = snprintf(line, sizeof line, "EXIT %d\n", code);
    return write_all(out, line, l);
}

/* Serves requests from `in` until end of file. */
static void serve(int in, int out) {
    static char req[256 * 1024];
    for (;;) {
        int n = readline(in, req, sizeof req);
        if (n <= 0) return;
        if (strncmp(req, "RUN ", 4) != 0) continue; /* tty noise */
        char *cmd = req + 4;
        if (b64_decode(cmd) < 0) {
            write_all(out, "EXIT 126\n", 9);
            continue;
        }
        if (run_one(out, cmd)) return;
    }
}

static int vsock_listener(int port) {
    struct sockaddr_vm a;
    memset(&a, 0, sizeof a);
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = port;
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return -1; }
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) { perror("bind/listen"); return -1; }
    return s;
}

static int agent(int port) {
    int s = vsock_listener(port);
    if (s < 0) return 1;
    signal(SIGCHLD, SIG_IGN); /* connection handlers reap themselves */
    printf("VSOCK-AGENT-READY %d\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("accept");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(s);
            signal(SIGCHLD, SIG_DFL);
            serve(c, c);
            _exit(0);
        }
        close(c);
    }
}

static int agent_tty(const char *dev) {
    int fd = open(dev, O_RDWR | O_NOCTTY);
    if (fd < 0) { perror(dev); return 1; }
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    printf("TTY-AGENT-READY %s\n", dev);
    fflush(stdout);
    for (;;) serve(fd, fd);
}

static int blk_range(const char *dev, const char *off, const char *len, unsigned long op) {
    int fd = open(dev, O_WRONLY);
    if (fd < 0) { perror(dev); return 1; }
    uint64_t r[2] = { strtoull(off, NULL, 0), strtoull(len, NULL, 0) };
    if (ioctl(fd, op, r)) { perror(op == BLKDISCARD ? "BLKDISCARD" : "BLKZEROOUT"); return 1; }
    return close(fd) != 0;
}

static int copy_fd(int from, int to) {
    static char buf[256 * 1024];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) return 0;
        if (write_all(to, buf, n)) { perror("write"); return 1; }
    }
}

static int tcp_recv(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("tcp listen"); return 1; }
    fprintf(stderr, "TCP-LISTENING %d\n", port);
    int c = accept(s, NULL, NULL);
    if (c < 0) { perror("accept"); return 1; }
    return copy_fd(c, 1);
}

static int tcp_send(const char *addr, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (s < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); return 1; }
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("tcp connect"); return 1; }
    if (copy_fd(0, s)) return 1;
    shutdown(s, SHUT_WR);
    char b;
    while (read(s, &b, 1) > 0) {}
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "tcp-recv")) return tcp_recv(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "tcp-send")) return tcp_send(argv[2], atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "agent")) return agent(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "agent-tty")) return agent_tty(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "discard")) return blk_range(argv[2], argv[3], argv[4], BLKDISCARD);
    if (argc == 5 && !strcmp(argv[1], "zeroout")) return blk_range(argv[2], argv[3], argv[4], BLKZEROOUT);
    if (argc == 5 && !strcmp(argv[1], "connect")) {
        struct sockaddr_vm a;
        memset(&a, 0, sizeof a);
        a.svm_family = AF_VSOCK;
        a.svm_cid = atoi(argv[2]);
        a.svm_port = atoi(argv[3]);
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0) { perror("socket"); return 1; }
        if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        dprintf(s, "%s\n", argv[4]);
        char buf[4096];
        int n;
        while ((n = read(s, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
        return n < 0;
    }
    if (argc == 3 && (!strcmp(argv[1], "listen") || !strcmp(argv[1], "echo"))) {
        int s = vsock_listener(atoi(argv[2]));
        if (s < 0) return 1;
        printf("VSOCK-LISTENING %s\n", argv[2]);
        fflush(stdout);
        int c = accept(s, NULL, NULL);
        if (c < 0) { perror("accept"); return 1; }
        if (!strcmp(argv[1], "listen")) {
            char line[512];
            readline(c, line, sizeof line);
            dprintf(c, "echo: %s", line);
            printf("VSOCK-SERVED %s", line);
        } else {
            static char buf[64 * 1024];
            long total = 0;
            ssize_t n;
            while ((n = read(c, buf, sizeof buf)) > 0) {
                if (write_all(c, buf, n)) { perror("write"); return 1; }
                total += n;
            }
            if (n < 0) { perror("read"); return 1; }
            printf("VSOCK-ECHOED %ld\n", total);
        }
        close(c);
        return 0;
    }
    fprintf(stderr, "usage: guest-tool agent PORT | agent-tty DEV | connect CID PORT MSG | listen PORT | echo PORT\n"
                    "       | tcp-recv PORT | tcp-send ADDR PORT | discard DEV OFF LEN | zeroout DEV OFF LEN\n");
    return 2;
}
