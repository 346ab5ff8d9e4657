// SPDX-License-Identifier: GPL-2.0
/*
 * eng_kernel.c - the kernel engine: load responder.bpf.o (skeleton), pin its
 * maps and programs under the pin dir, attach sock_ops to our own cgroup v2
 * and sk_skb/sk_msg to the sockhash; then admit and greet sessions. When a
 * session may be closed is the close protocol's (eng_kernel_close.c). No
 * byte a client sent is ever read here: the BPF programs answer it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caps.h"
#include "clock.h"
#include "eng_kernel.h"
#include "log.h"
#include "pins.h"
#include "probe.h"
#include "responder.skel.h"

/*
 * The event ring's size. The controller maps all of it twice (the kernel maps
 * the data pages back to back so records never wrap), so it counts twice in
 * the controller's RSS: 512 KiB costs 1 MiB. It holds about 16,000 close
 * events at once; what does not fit is recovered from the session map
 * (eng_kernel_close.c). A test build (ML_TEST_HOOKS) reads
 * MAILLESS_TEST_RING_KIB to shrink it, so that the tests can overflow it on
 * purpose; the shipped binary has no such hook.
 */
#define RING_BYTES	(512 * 1024)

#ifdef ML_TEST_HOOKS
static __u32 ring_bytes(void)
{
	const char *t = getenv("MAILLESS_TEST_RING_KIB");
	unsigned long kib = t ? strtoul(t, NULL, 10) : 0;
	__u32 n = 4096;

	if (!kib)
		return RING_BYTES;
	while (n < kib * 1024 && n < RING_BYTES)	/* a power of two, >= a page */
		n <<= 1;
	return n;
}
#else
static __u32 ring_bytes(void)
{
	return RING_BYTES;
}
#endif

/* ---- engine ops ---------------------------------------------------------------- */

/* The ring buffer names sessions by socket cookie, which sock_ops noted at
 * the handshake. A socket it could not admit (its session map full) would be
 * greeted and then never answered: refused as busy. */
static int k_admit(struct ml_server *srv, struct ml_session *s,
		   const struct sockaddr_storage *peer)
{
	struct kpriv *k = srv->eng_priv;

	(void)peer;
	if (bpf_map_lookup_elem(bpf_map__fd(k->maps.skel->maps.admitted), &s->fd, &s->cookie))
		return -EBUSY;
	return 0;
}


static int k_open(struct ml_server *srv, struct ml_session *s)
{
	struct kpriv *k = srv->eng_priv;
	uint8_t st = 0;
	int r, one = 1;

	/* s->cookie was read at accept (server.c). The socket is never in the
	 * epoll set: sock_ops reports the client's FIN or reset (ML_EV_PEER)
	 * for the cookies in this table. */
	if (ml_kern_ck_put(k, s->cookie, s->fd)) {
		s->reason = ML_ST_CLOSE_ERROR;
		log_err("session table full (%u slots); refusing a session: this is a bug, "
		    "please report it", k->ckmask + 1);
		return -ENOSPC;
	}
	/* EACCES: the client talked first and the verdict program already
	 * sent the greeting in front of its replies. */
	r = ml_send_reply(srv, s, ML_OP_GREET);
	if (r && r != -EACCES)
		log_dbg("greeting fd %d: %s", s->fd, strerror(-r));
	/* Bytes that arrived before accept() sit in the receive queue: the
	 * psock's data_ready ignored them while the socket had no file
	 * (docs/design.md, "Early talkers"). Setting SO_RCVLOWAT runs tcp_data_ready(), which
	 * hands them to the verdict program now, after the greeting. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		return -errno;
	/* A FIN or reset before accept() was reported while the cookie was
	 * not in the table yet, and ignored: the socket's state says it. One
	 * that comes later finds the cookie. */
	if (ml_kern_tcp_queued(s->fd, NULL, &st, NULL) || st == BPF_TCP_CLOSE) {
		s->reason = ML_ST_CLOSE_RESET;
		return -ECONNRESET;
	}
	if (st != BPF_TCP_ESTABLISHED) {
		s->reason = ML_ST_CLOSE_CLIENT;
		ml_kern_start_drain(srv, s, UINT64_MAX);
	}
	return 0;
}

static int k_poll_fd(struct ml_server *srv)
{
	return ring_buffer__epoll_fd(((struct kpriv *)srv->eng_priv)->rb);
}

static uint64_t k_idle_ms(struct ml_server *srv, struct ml_session *s)
{
	uint32_t idle = 0;

	(void)srv;
	if (ml_kern_tcp_queued(s->fd, NULL, NULL, &idle))
		return UINT64_MAX;	/* broken socket: let the timeout take it */
	return idle;
}

/* ---- load, attach, pin ------------------------------------------------------- */

static int fill_listeners(struct ml_server *srv, struct kpriv *k)
{
	int fd = bpf_map__fd(k->maps.skel->maps.listeners), i;
	__u32 one = 1;

	for (i = 0; i < srv->opts.nlisten; i++) {
		const struct ml_listen *l = &srv->opts.listen[i];
		/* The socket's own family: 0.0.0.0 serves AF_INET children
		 * only, [::] (dual-stack) AF_INET6 ones, v4-mapped included. */
		struct ml_listen_key key = { .family = l->ss.ss_family };

		if (l->ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)&l->ss;

			key.port = ntohs(in->sin_port);
			if (in->sin_addr.s_addr != htonl(INADDR_ANY)) {
				key.addr[2] = htonl(0xffff);
				key.addr[3] = in->sin_addr.s_addr;
			}
		} else {
			const struct sockaddr_in6 *in6 = (const void *)&l->ss;

			key.port = ntohs(in6->sin6_port);
			memcpy(key.addr, &in6->sin6_addr, 16);
		}
		if (bpf_map_update_elem(fd, &key, &one, BPF_ANY))
			return -errno;
	}
	return 0;
}

static void k_shutdown(struct ml_server *srv)
{
	struct kpriv *k = srv->eng_priv;
	struct responder_bpf *skel;

	if (!k)
		return;
	skel = k->maps.skel;
	if (k->rb)
		ring_buffer__free(k->rb);
	if (k->cg_link)
		bpf_link__destroy(k->cg_link);
	if (skel) {
		int mfd = bpf_map__fd(skel->maps.socks);

		if (k->attached_skb)
			bpf_prog_detach2(bpf_program__fd(skel->progs.ml_verdict), mfd,
					 BPF_SK_SKB_VERDICT);
		if (k->attached_msg)
			bpf_prog_detach2(bpf_program__fd(skel->progs.ml_msg), mfd,
					 BPF_SK_MSG_VERDICT);
	}
	ml_maps_close(&k->maps);
	srv->maps = NULL;
	free(k->ck);
	free(k->ckfd);
	free(k);
	srv->eng_priv = NULL;
}

static int k_start(struct ml_server *srv)
{
	struct kpriv *k;
	struct responder_bpf *skel;
	char cg[PATH_MAX];
	struct ml_info inf = {};
	__u64 netns = 0;
	socklen_t len = sizeof(netns);
	__u32 entries;
	int cgfd = -1, e, mfd;

	/* With --engine auto a failure is expected on some hosts: libbpf's
	 * own messages only with -v; ours say why. */
	ml_log_libbpf(srv->opts.engine == ML_ENGINE_AUTO && ml_log_level < ML_DEBUG);
	/* CAP_PERFMON: the verifier offers bpf_skc_to_tcp_sock() only to
	 * perfmon_capable() loaders. */
	if ((e = ml_need_caps("the kernel engine", ML_CAP_BPF | ML_CAP_PERFMON |
			      ML_CAP_NET_ADMIN)) || (e = ml_probe_kernel()))
		return e;
	if ((e = ml_bpffs_ensure()))
		return e;
	if (getsockopt(srv->lfd[0], SOL_SOCKET, SO_NETNS_COOKIE, &netns, &len)) {
		e = -errno;
		ml_explain_bpf("reading the network namespace cookie (SO_NETNS_COOKIE)", errno);
		return e;
	}
	if ((e = ml_cgroup_own(cg, sizeof(cg), 0)))
		return e;
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		e = -errno;
		log_err("cannot open own cgroup %s: %s", cg, strerror(errno));
		return e;
	}

	k = calloc(1, sizeof(*k));
	if (!k) {
		close(cgfd);
		return -ENOMEM;
	}
	k->maps.lock_fd = -1;
	srv->eng_priv = k;
	if ((e = ml_kern_ck_init(k, srv->nsess_max)))
		goto fail;
	if ((e = ml_maps_lock(&k->maps, srv->opts.pin_dir)))
		goto fail;
	skel = responder_bpf__open();
	if (!skel) {
		e = -errno;
		ml_explain_bpf("opening the BPF object", errno);
		goto fail;
	}
	k->maps.skel = skel;
	skel->rodata->netns_cookie = netns;
	/* Every descriptor the process may hold, plus the accept backlog. */
	entries = (__u32)srv->nsess_max + 4096;
	bpf_map__set_max_entries(skel->maps.socks, entries);
	bpf_map__set_max_entries(skel->maps.sessions, entries);
	bpf_map__set_max_entries(skel->maps.events, ring_bytes());
	if (responder_bpf__load(skel)) {
		e = -errno;
		ml_explain_bpf("loading the BPF programs", errno);
		goto fail;
	}
	if ((e = ml_maps_write_config(&k->maps, &srv->render, 0)) ||
	    (e = fill_listeners(srv, k))) {
		ml_explain_bpf("filling the maps", -e);
		goto fail;
	}

	mfd = bpf_map__fd(skel->maps.socks);
	if (bpf_prog_attach(bpf_program__fd(skel->progs.ml_verdict), mfd,
			    BPF_SK_SKB_VERDICT, 0)) {
		e = -errno;
		ml_explain_bpf("attaching the sk_skb verdict program to the sockhash", errno);
		goto fail;
	}
	k->attached_skb = 1;
	if (bpf_prog_attach(bpf_program__fd(skel->progs.ml_msg), mfd,
			    BPF_SK_MSG_VERDICT, 0)) {
		e = -errno;
		ml_explain_bpf("attaching the sk_msg program to the sockhash", errno);
		goto fail;
	}
	k->attached_msg = 1;
	/* A link, not a plain attach: if this process dies, the kernel
	 * detaches sock_ops by itself. */
	k->cg_link = bpf_program__attach_cgroup(skel->progs.ml_sockops, cgfd);
	if (!k->cg_link) {
		e = -errno;
		k->cg_link = NULL;
		ml_explain_bpf("attaching sock_ops to the cgroup", errno);
		goto fail;
	}
	k->rb = ring_buffer__new(bpf_map__fd(skel->maps.events), ml_kern_on_event, srv, NULL);
	if (!k->rb) {
		e = -errno;
		ml_explain_bpf("opening the ring buffer", errno);
		goto fail;
	}

	inf.pid = getpid();
	inf.engine = ML_INFO_ENGINE_KERNEL;
	inf.max_sessions = srv->opts.max_sessions;
	inf.cgroup_own = ml_cgroup_is_ours(cg);
	inf.netns_cookie = netns;
	inf.started = time(NULL);
	snprintf(inf.cgroup, sizeof(inf.cgroup), "%s", cg);
	snprintf(inf.hostname, sizeof(inf.hostname), "%s", srv->opts.hostname);
	ml_maps_set_info(&k->maps, &inf);
	if ((e = ml_maps_pin(&k->maps))) {
		ml_explain_bpf("pinning under the pin dir", -e);
		goto fail;
	}
	if (!inf.cgroup_own)
		log_warn("sock_ops stays on %s, shared with every process started there: "
		     "mailless cannot make a cgroup of its own (%s). It still admits "
		     "only connections to its own (family, address, port) in its own "
		     "network namespace, but a socket of another program in that cgroup "
		     "with the same local address and port (a transparent proxy, for "
		     "one) would be answered by mailless; give it a writable cgroup v2 "
		     "(systemd: Delegate=yes)", cg, ml_cgroup_why_shared());
	close(cgfd);
	log_dbg("kernel engine: cgroup %s, netns cookie %llu, pin dir %s", cg,
	    (unsigned long long)netns, srv->opts.pin_dir);
	srv->maps = &k->maps;
	return 0;

fail:
	close(cgfd);
	k_shutdown(srv);
	return e ? e : -EINVAL;
}

static void k_prepare(struct ml_server *srv)
{
	(void)srv;
	ml_cgroup_enter();
}

static void k_unprepare(struct ml_server *srv)
{
	(void)srv;
	ml_cgroup_leave();
}

const struct ml_engine_ops ml_kernel_engine = {
	.name = "kernel",
	.instead = "--engine user serves without BPF",
	.prepare = k_prepare,
	.unprepare = k_unprepare,
	.start = k_start,
	.shutdown = k_shutdown,
	.admit = k_admit,
	.open = k_open,
	.idle_ms = k_idle_ms,
	.drain = ml_kern_drain,
	.poll_fd = k_poll_fd,
	.poll = ml_kern_poll,
	.tick = ml_kern_tick,
	.close = ml_kern_close,
};
