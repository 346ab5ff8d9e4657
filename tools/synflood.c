// SPDX-License-Identifier: GPL-2.0
/*
 * synflood: a bounded SYN flood on a veth, for `make bench` (tools/bench.py).
 *
 * It measures how many SYNs per second the far end of a veth answers with a
 * SYN-ACK, where the far end is the XDP responder (mailless --engine xdp in
 * native mode) or any TCP listener. No packet socket and no TCP stack on the
 * sending side: the SYNs are made by the program syn_gen, run by
 * BPF_PROG_TEST_RUN in live-frames mode on IFACE (the kernel transmits every
 * frame the program returns XDP_TX for, in batches), and the SYN-ACKs are
 * counted and dropped by syn_sink, attached to IFACE in native mode, before
 * any TCP code sees them. tools/synflood.bpf.c says what each frame is.
 *
 * Usage: synflood -i IFACE --dst-mac MAC DST_IP:PORT [options]
 *   -i IFACE        the veth to send on (this namespace's end)
 *   --dst-mac MAC   the peer's MAC (aa:bb:cc:dd:ee:ff)
 *   -s SRC_IP       first source address (default: IFACE's IPv4 address)
 *   --addrs N       source addresses, counting up from SRC_IP (default 1)
 *   -D SECS         send for SECS seconds (default 2; at most 60)
 *   -r RATE         offer at most RATE SYNs a second (default 0: as fast as the
 *                   kernel takes them); syn_gen keeps the pace frame by frame
 *   -b BATCH        frames per live-frames batch (default 64, at most 256)
 *   -T THREADS      sending threads (default 2, at most 8): each call spends
 *                   about 20 ms setting up and tearing down, sending nothing,
 *                   and a second thread sends meanwhile
 *   -j              one JSON object instead of text and the RESULT line
 * Source ports are 1024..65535 for every address. The last line (text) is
 *   RESULT sent=N secs=F rate=F synack=N synack_rate=F other=N cpu_s=F
 * where rate is SYNs sent per second, synack_rate SYN-ACKs come back per
 * second of sending, other the TCP segments from PORT that were not a SYN-ACK
 * (RSTs), and cpu_s this process's CPU time (the sending is its system time).
 * Exit status 0, 1 on a runtime failure, 2 on bad usage. Needs CAP_BPF and
 * CAP_NET_ADMIN. The target must be an address of this namespace's peer:
 * the frames leave only through IFACE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "synflood.h"
#include "synflood.skel.h"

/* Program runs per BPF_PROG_TEST_RUN call. Each call spends about 20 ms
 * (measured on 6.18) setting up and tearing down its frame pool, sending
 * nothing, so calls are long: a quarter to half a second here. */
#define CHUNK (1u << 21)

static volatile sig_atomic_t stop;

/* Senders: each makes BPF_PROG_TEST_RUN calls of CHUNK runs until the
 * deadline. Two or more cover each other's set-up and tear-down (about
 * 20 ms a call, on no CPU); syn_gen keeps one pace for all of them. */
#define GEN_MAX 8
struct gen {
	int prog_fd, ifindex, err;
	const unsigned char *frame;
	size_t flen;
	unsigned long batch;
	double t0, secs, t_end;
	const char *ifname;
	__u64 calls;
};
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "Usage: synflood -i IFACE --dst-mac MAC DST_IP:PORT [-s SRC_IP] [--addrs N]\n"
		"                [-D SECS] [-r RATE] [-b BATCH] [-T THREADS] [-j]   (tools/synflood.c says more)\n");
	exit(2);
}

static void bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "synflood: Error: %s: '%s' %s\n", opt, val, why);
	exit(2);
}

static unsigned long num(const char *opt, const char *v, unsigned long lo, unsigned long hi)
{
	char *e;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &e, 10);
	if (errno || e == v || *e || x < lo || x > hi) {
		char why[64];

		snprintf(why, sizeof(why), "is not a whole number from %lu to %lu", lo, hi);
		bad(opt, v, why);
	}
	return x;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	return 0;
}

/* IFACE's MAC and IPv4 address, through ioctls: right in any namespace,
 * where /sys/class/net shows the namespace sysfs was mounted in. */
static int iface_addrs(const char *ifname, unsigned char mac[6], struct in_addr *a)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		ret = -errno;
		goto out;
	}
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	a->s_addr = 0;
	if (ioctl(fd, SIOCGIFADDR, &ifr) == 0)
		*a = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
out:
	close(fd);
	return ret;
}

static __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* The template SYN, copied into every frame by syn_gen, which then writes
 * the source port and address, seq, TSval, IP id and both checksums. */
static size_t build_template(unsigned char *f, const unsigned char src_mac[6],
			     const unsigned char dst_mac[6], struct in_addr src,
			     struct in_addr dst, __u16 dport)
{
	static const unsigned char opts[SYNFLOOD_OPT_LEN] = {
		2, 4, 0x05, 0xb4,		/* MSS 1460 */
		4, 2, 8, 10,			/* SACK-permitted, timestamps: */
		0, 0, 0, 1, 0, 0, 0, 0,		/*   TSval, TSecr 0 */
		1, 3, 3, 7,			/* NOP, window scale 7 */
	};
	unsigned char *ip = f + 14, *th = ip + 20;
	size_t tcplen = 20 + SYNFLOOD_OPT_LEN;

	memcpy(f, dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (20 + tcplen) >> 8, ip[3] = (20 + tcplen) & 0xff;
	ip[6] = 0x40;			/* DF */
	ip[8] = 64, ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	memset(th, 0, tcplen);
	th[0] = 1024 >> 8;
	th[2] = dport >> 8, th[3] = dport & 0xff;
	th[12] = (tcplen / 4) << 4;
	th[13] = 0x02;			/* SYN */
	th[14] = 64240 >> 8, th[15] = 64240 & 0xff;
	memcpy(th + 20, opts, sizeof(opts));
	{
		__u32 s = 0;

		for (int i = 0; i < 20; i += 2)
			s += ip[i] << 8 | ip[i + 1];
		ip[10] = csum_fold(s) >> 8, ip[11] = csum_fold(s) & 0xff;
	}
	return 14 + 20 + tcplen;
}

static void *gen_loop(void *arg)
{
	struct gen *g = arg;
	double t = g->t0;

	while (!stop && t - g->t0 < g->secs) {
		struct xdp_md ctx_in = { .data_end = g->flen, .ingress_ifindex = g->ifindex };
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = g->frame, .data_size_in = g->flen,
			    .ctx_in = &ctx_in, .ctx_size_in = sizeof(ctx_in), .repeat = CHUNK,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = g->batch);

		if (bpf_prog_test_run_opts(g->prog_fd, &o) && errno != EINTR) {
			g->err = -errno;
			fprintf(stderr, "synflood: Error: BPF_PROG_TEST_RUN (live frames) on %s: %s\n",
				g->ifname, strerror(errno));
			stop = 1;
			break;
		}
		t = now();
		g->calls++;
	}
	g->t_end = t;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"dst-mac", required_argument, 0, 'M'}, {"addrs", required_argument, 0, 'A'},
		{"help", no_argument, 0, 'h'}, {0}
	};
	const char *ifname = NULL, *dst_mac_s = NULL, *src_s = NULL, *target;
	unsigned long naddrs = 1, batch = 64, rate = 0, nthreads = 2;
	double secs = 2, t0, t1;
	int json = 0, c, ifindex, err, attached = 0;
	unsigned char frame[128], src_mac[6], dst_mac[6];
	struct in_addr src, dst;
	char host[64], *colon, *e;
	unsigned long port;
	struct synflood_bpf *skel;
	struct rusage ru;
	size_t flen;
	__u64 calls = 0;

	while ((c = getopt_long(argc, argv, "i:s:D:r:b:T:jh", lo, NULL)) != -1) {
		switch (c) {
		case 'i': ifname = optarg; break;
		case 'M': dst_mac_s = optarg; break;
		case 's': src_s = optarg; break;
		case 'A': naddrs = num("--addrs", optarg, 1, 65536); break;
		case 'D':
			secs = strtod(optarg, &e);
			if (*e || e == optarg || !(secs > 0 && secs <= 60))
				bad("-D", optarg, "is not a number of seconds above 0, at most 60");
			break;
		case 'r': rate = num("-r", optarg, 0, 100000000); break;
		case 'b': batch = num("-b", optarg, 1, 256); break;
		case 'T': nthreads = num("-T", optarg, 1, GEN_MAX); break;
		case 'j': json = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || !ifname || !dst_mac_s)
		usage();
	target = argv[optind];
	if (parse_mac(dst_mac_s, dst_mac))
		bad("--dst-mac", dst_mac_s, "is not a MAC (aa:bb:cc:dd:ee:ff)");
	colon = strrchr(target, ':');
	if (!colon || (size_t)(colon - target) >= sizeof(host))
		bad("target", target, "is not IPV4:PORT");
	memcpy(host, target, colon - target);
	host[colon - target] = 0;
	if (inet_pton(AF_INET, host, &dst) != 1)
		bad("target", target, "is not IPV4:PORT");
	port = num("port", colon + 1, 1, 65535);
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		bad("-i", ifname, "is not an interface of this network namespace");
	err = iface_addrs(ifname, src_mac, &src);
	if (err) {
		fprintf(stderr, "synflood: Error: %s: cannot read its addresses: %s\n", ifname,
			strerror(-err));
		return 1;
	}
	if (src_s && inet_pton(AF_INET, src_s, &src) != 1)
		bad("-s", src_s, "is not an IPv4 address");
	if (!src.s_addr)
		bad("-i", ifname, "has no IPv4 address: give -s SRC_IP");
	flen = build_template(frame, src_mac, dst_mac, src, dst, port);

	skel = synflood_bpf__open();
	if (!skel) {
		fprintf(stderr, "synflood: Error: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	memcpy((void *)skel->rodata->cfg.frame, frame, flen);
	skel->rodata->cfg.saddr = ntohl(src.s_addr);
	skel->rodata->cfg.naddrs = naddrs;
	skel->rodata->cfg.sport_lo = 1024;
	skel->rodata->cfg.nports = 65536 - 1024;
	skel->rodata->cfg.dport = port;
	skel->rodata->cfg.interval_ns = rate ? 1000000000ull / rate : 0;
	err = synflood_bpf__load(skel);
	if (err) {
		fprintf(stderr, "synflood: Error: cannot load the BPF programs: %s (needs CAP_BPF)\n",
			strerror(-err));
		goto out;
	}
	err = bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.syn_sink),
			     XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
	if (err) {
		fprintf(stderr, "synflood: Error: cannot attach syn_sink to %s in native mode: %s"
			" (an XDP program already there?)\n", ifname, strerror(-err));
		goto out;
	}
	attached = 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	{
		struct gen g[GEN_MAX];
		pthread_t tid[GEN_MAX];

		t0 = now();
		t1 = t0;
		for (unsigned long i = 0; i < nthreads; i++) {
			g[i] = (struct gen){ .prog_fd = bpf_program__fd(skel->progs.syn_gen),
					     .ifindex = ifindex, .frame = frame, .flen = flen,
					     .batch = batch, .t0 = t0, .secs = secs, .ifname = ifname };
			if (pthread_create(&tid[i], NULL, gen_loop, &g[i])) {
				fprintf(stderr, "synflood: Error: cannot start a thread\n");
				stop = 1;
				nthreads = i;
				break;
			}
		}
		for (unsigned long i = 0; i < nthreads; i++) {
			pthread_join(tid[i], NULL);
			if (g[i].t_end > t1)
				t1 = g[i].t_end;
			calls += g[i].calls;
			if (g[i].err)
				err = g[i].err;
		}
		if (err)
			goto out;
	}
	usleep(200000);		/* the last SYN-ACKs in flight */
	getrusage(RUSAGE_SELF, &ru);
	{
		double dt = t1 - t0, cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		const struct synflood_counts *k = &skel->bss->counts;

		if (json)
			printf("{\"sent\": %llu, \"secs\": %.4f, \"rate\": %.1f, \"synack\": %llu, "
			       "\"synack_rate\": %.1f, \"other\": %llu, \"cpu_s\": %.3f, "
			       "\"calls\": %llu, \"batch\": %lu, \"addrs\": %lu, \"offered\": %lu}\n",
			       (unsigned long long)k->sent, dt, k->sent / dt,
			       (unsigned long long)k->synack, k->synack / dt,
			       (unsigned long long)k->other, cpu, (unsigned long long)calls, batch,
			       naddrs, rate);
		else
			printf("synflood: %llu SYNs in %.3f s (%.0f/s) on %s to %s; %llu SYN-ACKs back"
			       " (%.0f/s), %llu other\n"
			       "RESULT sent=%llu secs=%.4f rate=%.1f synack=%llu synack_rate=%.1f "
			       "other=%llu cpu_s=%.3f\n",
			       (unsigned long long)k->sent, dt, k->sent / dt, ifname, target,
			       (unsigned long long)k->synack, k->synack / dt,
			       (unsigned long long)k->other, (unsigned long long)k->sent, dt,
			       k->sent / dt, (unsigned long long)k->synack, k->synack / dt,
			       (unsigned long long)k->other, cpu);
	}
out:
	if (attached) {
		/* only our own program: XDP_FLAGS_REPLACE checks it is still there */
		LIBBPF_OPTS(bpf_xdp_attach_opts, d,
			    .old_prog_fd = bpf_program__fd(skel->progs.syn_sink));

		bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &d);
	}
	synflood_bpf__destroy(skel);
	return err ? 1 : 0;
}
