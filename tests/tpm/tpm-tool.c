/*
 * tpm-tool: a guest-side TPM 2.0 client for tests/tpm/tpm-test.sh, built
 * with riscv64-linux-gnu-gcc -static and run as /tpm-tool in the guest.
 *
 * Debian's 6.12 riscv64 kernel has no tpm_tis driver (CONFIG_TCG_TIS is
 * not set; only tpm_tis_core and tpm_tis_spi are modules), so this tool
 * drives the TIS FIFO registers itself through /dev/mem, the way Linux's
 * tpm_tis_core does in polled mode (TCG PC Client PTP, FIFO interface):
 * request locality 0, commandReady, write the command while `expect`,
 * tpmGo, poll for stsValid|dataAvail, read the response, commandReady.
 * The window comes from the device tree (/proc/device-tree/soc/tpm@*).
 *
 *   tpm-tool dt            print the TPM node: compatible, reg, sml-size
 *   tpm-tool pcrs N...     TPM2_PCR_Read each SHA-256 PCR N: "pcr N sha256 HEX"
 *   tpm-tool loop          PCR_Read PCR 0 until the TPM answers an error:
 *                          "tpm-error rc 0xRC" (exit 0), or "tpm-timeout"
 *                          if it never answers (exit 2)
 *
 * Exit status: 0 on success, 1 on a usage or device error, 2 on a timeout.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Register offsets and bits, locality 0 (PTP FIFO register map). */
#define ACCESS 0x00
#define STS 0x18
#define FIFO 0x24
#define ACCESS_REQUEST_USE 0x02
#define ACCESS_ACTIVE 0x20
#define STS_VALID 0x80
#define STS_COMMAND_READY 0x40
#define STS_GO 0x20
#define STS_DATA_AVAIL 0x10
#define STS_EXPECT 0x08

/* How long to wait for the TPM: far beyond any command's duration. */
#define POLL_US 200
#define POLL_LIMIT (60 * 1000000 / POLL_US)

static volatile uint8_t *tis;
static char node[320];

static int find_node(void)
{
	DIR *d = opendir("/proc/device-tree/soc");
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, "tpm@", 4)) {
			snprintf(node, sizeof node, "/proc/device-tree/soc/%s", e->d_name);
			closedir(d);
			return 0;
		}
	}
	closedir(d);
	return -1;
}

static long read_prop(const char *name, uint8_t *buf, size_t len)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", node, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long n = fread(buf, 1, len, f);
	fclose(f);
	return n;
}

static uint64_t be(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

static int map_tis(void)
{
	uint8_t reg[16];
	if (find_node() || read_prop("reg", reg, 16) != 16) {
		printf("tpm-tool: no TPM node in the device tree\n");
		return -1;
	}
	uint64_t base = be(reg, 8), size = be(reg + 8, 8);
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("tpm-tool: /dev/mem");
		return -1;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
	if (p == MAP_FAILED) {
		perror("tpm-tool: mmap");
		return -1;
	}
	tis = p;
	return 0;
}

static uint8_t sts(void) { return tis[STS]; }
static unsigned burst(void) { return tis[STS + 1] | tis[STS + 2] << 8; }

static int wait_sts(uint8_t mask, uint8_t want)
{
	for (long i = 0; i < POLL_LIMIT; i++) {
		if ((sts() & mask) == want)
			return 0;
		usleep(POLL_US);
	}
	return -1;
}

/* One command; returns the response length, -1 on a device error, -2 on a
 * timeout. */
static int transact(const uint8_t *cmd, int len, uint8_t *rsp, int cap)
{
	tis[ACCESS] = ACCESS_REQUEST_USE;
	if (!(tis[ACCESS] & ACCESS_ACTIVE))
		return -1;
	tis[STS] = STS_COMMAND_READY;
	if (wait_sts(STS_COMMAND_READY, STS_COMMAND_READY))
		return -2;
	int i = 0;
	while (i < len) {
		unsigned b = burst();
		if (!b)
			return -1;
		for (; b && i < len; b--)
			tis[FIFO] = cmd[i++];
		if (i < len && !(sts() & STS_EXPECT))
			return -1;
	}
	if (sts() & STS_EXPECT)
		return -1;
	tis[STS] = STS_GO;
	if (wait_sts(STS_VALID | STS_DATA_AVAIL, STS_VALID | STS_DATA_AVAIL))
		return -2;
	int n = 0;
	while ((sts() & STS_DATA_AVAIL) && n < cap)
		rsp[n++] = tis[FIFO];
	tis[STS] = STS_COMMAND_READY;
	return n;
}

/* TPM2_PCR_Read of one SHA-256 PCR (TPM 2.0 Part 3 §22.4). */
static int pcr_read(int pcr, uint8_t *rsp, int cap)
{
	uint8_t cmd[20] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0x00, 0x0b, 3, 0, 0, 0};
	cmd[17 + pcr / 8] = 1 << (pcr % 8);
	return transact(cmd, sizeof cmd, rsp, cap);
}

static uint32_t rc_of(const uint8_t *r) { return be(r + 6, 4); }

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 1;
	if (!strcmp(argv[1], "dt")) {
		uint8_t b[64] = {0};
		if (find_node()) {
			printf("tpm-tool: no TPM node in the device tree\n");
			return 1;
		}
		read_prop("compatible", b, sizeof b - 1);
		printf("tpm-node %s compatible %s\n", node, (char *)b);
		if (read_prop("linux,sml-size", b, 4) == 4)
			printf("sml-size %llu\n", (unsigned long long)be(b, 4));
		if (read_prop("linux,sml-base", b, 8) == 8)
			printf("sml-base 0x%llx\n", (unsigned long long)be(b, 8));
		return 0;
	}
	if (map_tis())
		return 1;
	uint8_t r[4096];
	if (!strcmp(argv[1], "pcrs")) {
		for (int a = 2; a < argc; a++) {
			int pcr = atoi(argv[a]);
			if (pcr < 0 || pcr > 23)
				return 1;
			int n = pcr_read(pcr, r, sizeof r);
			if (n == -2) {
				printf("tpm-timeout\n");
				return 2;
			}
			/* header 10, update counter 4, selection 10, count 4, size 2 */
			if (n < 62 || rc_of(r) != 0 || be(r + 28, 2) != 32) {
				printf("tpm-error pcr %d rc 0x%x len %d\n", pcr, n >= 10 ? rc_of(r) : 0, n);
				return 1;
			}
			printf("pcr %d sha256 ", pcr);
			for (int i = 30; i < 62; i++)
				printf("%02x", r[i]);
			printf("\n");
		}
		return 0;
	}
	if (!strcmp(argv[1], "loop")) {
		for (long k = 0;; k++) {
			int n = pcr_read(0, r, sizeof r);
			if (n == -2) {
				printf("tpm-timeout\n");
				return 2;
			}
			if (n < 10) {
				printf("tpm-error short response (%d bytes)\n", n);
				return 1;
			}
			if (rc_of(r) != 0) {
				printf("tpm-error rc 0x%x after %ld good reads\n", rc_of(r), k);
				return 0;
			}
			usleep(20000);
		}
	}
	return 1;
}
