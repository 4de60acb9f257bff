/* Tiny AF_VSOCK client/server for tests/virtio/vsock-test.sh (built with
 * riscv64-linux-gnu-gcc -static and run inside the guest; busybox has no
 * vsock support).
 *   vsock-tool connect CID PORT MESSAGE   send MESSAGE\n, print the reply until EOF
 *   vsock-tool listen PORT                accept one connection, read one line,
 *                                         answer "echo: <line>", close
 * Exit status 0 on success; errors are printed with perror. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

static int readline(int fd, char *buf, int max) {
    int n = 0;
    while (n < max - 1) {
        char c;
        int r = read(fd, &c, 1);
        if (r <= 0) break;
        buf[n++] = c;
        if (c == '\n') break;
    }
    buf[n] = 0;
    return n;
}

int main(int argc, char **argv) {
    struct sockaddr_vm a;
    memset(&a, 0, sizeof a);
    a.svm_family = AF_VSOCK;
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    if (argc == 5 && !strcmp(argv[1], "connect")) {
        a.svm_cid = atoi(argv[2]);
        a.svm_port = atoi(argv[3]);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        dprintf(s, "%s\n", argv[4]);
        char buf[4096];
        int n;
        while ((n = read(s, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
        return n < 0;
    }
    if (argc == 3 && !strcmp(argv[1], "listen")) {
        a.svm_cid = VMADDR_CID_ANY;
        a.svm_port = atoi(argv[2]);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("bind/listen"); return 1; }
        printf("VSOCK-LISTENING %s\n", argv[2]);
        fflush(stdout);
        int c = accept(s, NULL, NULL);
        if (c < 0) { perror("accept"); return 1; }
        char line[512];
        readline(c, line, sizeof line);
        dprintf(c, "echo: %s", line);
        printf("VSOCK-SERVED %s", line);
        close(c);
        return 0;
    }
    fprintf(stderr, "usage: vsock-tool connect CID PORT MSG | listen PORT\n");
    return 2;
}
