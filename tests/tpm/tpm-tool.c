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
 *   tpm-tool quote NONCE   an ECDSA P-256 attestation key (a primary key of the
 *                          endorsement hierarchy: the same for the same TPM
 *                          state) and a TPM2_Quote over SHA-256 PCRs 0-9 with
 *                          NONCE (hex) as qualifyingData; prints
 *                          "quote-key X Y", "quote-attest HEX", "quote-sig R S"
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

/* transact, again while the TPM answers TPM_RC_RETRY, TPM_RC_TESTING or
 * TPM_RC_YIELDED (Part 2 §6.6.3: warnings that ask for a resubmission). */
static int transact_retry(const uint8_t *cmd, int len, uint8_t *rsp, int cap)
{
	int n = -1;
	for (int i = 0; i < 50; i++) {
		n = transact(cmd, len, rsp, cap);
		if (n < 10)
			return n;
		uint32_t rc = be(rsp + 6, 4);
		if (rc != 0x922 && rc != 0x90A && rc != 0x908)
			return n;
		usleep(20000);
	}
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

/* Big-endian writers into a command buffer. */
static int put(uint8_t *b, int at, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		b[at + i] = v;
	return at + n;
}

/* The empty password session (TPM 2.0 Part 1 §19.8.4): authorizationSize,
 * TPM_RS_PW, empty nonce, attributes 0, empty hmac. */
static int put_pw_session(uint8_t *b, int at)
{
	at = put(b, at, 9, 4);
	at = put(b, at, 0x40000009, 4);
	at = put(b, at, 0, 2);
	at = put(b, at, 0, 1);
	return put(b, at, 0, 2);
}

static void print_hex(const char *label, const uint8_t *p, int n)
{
	if (label)
		printf("%s", label);
	for (int i = 0; i < n; i++)
		printf("%02x", p[i]);
}

/* TPM2_CreatePrimary (Part 3 §24.1) in the endorsement hierarchy of a
 * restricted ECDSA-SHA256 P-256 signing key, then TPM2_Quote (§18.4) of
 * SHA-256 PCRs 0-9, then TPM2_FlushContext. */
static int quote(const char *nonce_hex)
{
	uint8_t nonce[64], c[512], r[4096];
	int nlen = strlen(nonce_hex) / 2;
	if (nlen > (int)sizeof nonce || (int)strlen(nonce_hex) != 2 * nlen)
		return 1;
	for (int i = 0; i < nlen; i++)
		sscanf(nonce_hex + 2 * i, "%2hhx", &nonce[i]);

	int at = put(c, 0, 0x8002, 2);
	at += 4;
	at = put(c, at, 0x131, 4);        /* TPM_CC_CreatePrimary */
	at = put(c, at, 0x4000000B, 4);   /* TPM_RH_ENDORSEMENT */
	at = put_pw_session(c, at);
	at = put(c, at, 4, 2);            /* inSensitive: empty auth, empty data */
	at = put(c, at, 0, 2);
	at = put(c, at, 0, 2);
	int pub_size_at = at;
	at += 2;
	at = put(c, at, 0x0023, 2);       /* TPM_ALG_ECC */
	at = put(c, at, 0x000B, 2);       /* nameAlg SHA-256 */
	/* fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign */
	at = put(c, at, 0x00050072, 4);
	at = put(c, at, 0, 2);            /* authPolicy: empty */
	at = put(c, at, 0x0010, 2);       /* symmetric: TPM_ALG_NULL */
	at = put(c, at, 0x0018, 2);       /* scheme: TPM_ALG_ECDSA */
	at = put(c, at, 0x000B, 2);       /*   with SHA-256 */
	at = put(c, at, 0x0003, 2);       /* TPM_ECC_NIST_P256 */
	at = put(c, at, 0x0010, 2);       /* kdf: TPM_ALG_NULL */
	at = put(c, at, 0, 2);            /* unique.x, unique.y: empty */
	at = put(c, at, 0, 2);
	put(c, pub_size_at, at - pub_size_at - 2, 2);
	at = put(c, at, 0, 2);            /* outsideInfo: empty */
	at = put(c, at, 0, 4);            /* creationPCR: none */
	put(c, 2, at, 4);
	int n = transact_retry(c, at, r, sizeof r);
	if (n < 10 || rc_of(r)) {
		printf("tpm-error CreatePrimary rc 0x%x len %d\n", n >= 10 ? rc_of(r) : 0, n);
		return 1;
	}
	uint32_t key = be(r + 10, 4);
	/* outPublic after handle (4) and parameterSize (4): size, type, nameAlg,
	 * attributes, authPolicy, 5 parameter fields, then unique.x, unique.y. */
	int p = 18 + 2 + 2 + 2 + 4;
	p += 2 + be(r + p, 2);
	p += 10;
	int xl = be(r + p, 2);
	const uint8_t *x = r + p + 2;
	int yl = be(r + p + 2 + xl, 2);
	const uint8_t *y = r + p + 4 + xl;
	if (xl != 32 || yl != 32 || p + 4 + xl + yl > n) {
		printf("tpm-error CreatePrimary: unexpected outPublic\n");
		return 1;
	}
	print_hex("quote-key ", x, 32);
	print_hex(" ", y, 32);
	printf("\n");

	at = put(c, 0, 0x8002, 2);
	at += 4;
	at = put(c, at, 0x158, 4);        /* TPM_CC_Quote */
	at = put(c, at, key, 4);
	at = put_pw_session(c, at);
	at = put(c, at, nlen, 2);         /* qualifyingData */
	memcpy(c + at, nonce, nlen);
	at += nlen;
	at = put(c, at, 0x0010, 2);       /* inScheme: TPM_ALG_NULL, the key's */
	at = put(c, at, 1, 4);            /* PCRselect: SHA-256 PCRs 0-9 */
	at = put(c, at, 0x000B, 2);
	at = put(c, at, 3, 1);
	at = put(c, at, 0xff, 1);
	at = put(c, at, 0x03, 1);
	at = put(c, at, 0x00, 1);
	put(c, 2, at, 4);
	n = transact_retry(c, at, r, sizeof r);
	if (n < 10 || rc_of(r)) {
		printf("tpm-error Quote rc 0x%x len %d\n", n >= 10 ? rc_of(r) : 0, n);
		return 1;
	}
	/* parameterSize, quoted (TPM2B_ATTEST), signature (sigAlg, hash, R, S). */
	p = 14;
	int al = be(r + p, 2);
	print_hex("quote-attest ", r + p + 2, al);
	printf("\n");
	p += 2 + al + 4;
	int rl = be(r + p, 2);
	print_hex("quote-sig ", r + p + 2, rl);
	int sl = be(r + p + 2 + rl, 2);
	print_hex(" ", r + p + 4 + rl, sl);
	printf("\n");

	at = put(c, 0, 0x8001, 2);
	at = put(c, at, 14, 4);
	at = put(c, at, 0x165, 4);        /* TPM_CC_FlushContext */
	at = put(c, at, key, 4);
	transact(c, at, r, sizeof r);
	return 0;
}

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
	if (!strcmp(argv[1], "quote") && argc == 3)
		return quote(argv[2]);
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
