// SPDX-License-Identifier: GPL-2.0
/*
 * guard.c - the XDP guard's controller side: its settings, attaching
 * bpf/guard.bpf.c through libxdp, publishing limits and prefix lists
 * (atomically, on start and on SIGHUP), its counters, and `status` and
 * `unload` from the pins.
 *
 * libxdp and other XDP programs: where the kernel lets libxdp load its
 * dispatcher (freplace, BPF_PROG_TYPE_EXT), the guard joins the dispatcher
 * at its XDP_RUN_CONFIG priority beside whatever else is there. Where it
 * does not (this project's CI VM, locked-down kernels), libxdp attaches one
 * program alone: the guard then attaches only to a free interface and
 * refuses, naming the program in the way, rather than replace it.
 *
 * With --engine xdp the program is ml_guard_xr, the guard and the XDP
 * responder (bpf/xdpresp.bpf.h): loaded here and attached alone, never
 * over another program; its replies, key and ports are published with the
 * guard's slots, and ml_guard_resend() sends again the greetings clients
 * have not acknowledged.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "caps.h"
#include "clock.h"
#include "guardctl.h"
#include "json.h"
#include "guard.skel.h"
#include "log.h"
#include "parse.h"
#include "pins.h"
#include "privs.h"
#include "replies.h"
#include "xdpresp.h"

/* What the guard pins under the pin dir; `unload` removes these. */
static const char *const gd_maps[] = {
	"guard_cfg", "guard_ctl", "guard_buckets", "guard_stats", "guard_info",
	"guard_allow4", "guard_deny4", "guard_allow6", "guard_deny6",
	"xr_cfg", "xr_ctl", "xr_flows", "xr_stats", "xr_dialog", "xr_greet",	/* the responder's */
};
#define GD_PROG_PIN	"ml_guard"
#define N(a)		(sizeof(a) / sizeof(*(a)))

struct ml_guard {
	struct guard_bpf *skel;
	struct xdp_program *prog;
	struct gd_info info;
	int attached[GD_IFACE_MAX];
	unsigned int slot;		/* active slot */
	int respond;			/* --engine xdp: the responder answers */
	__u64 key[2];			/* the responder's cookie key */
	char pin_dir[PATH_MAX];
};

/* ---- libxdp's messages ---------------------------------------------------- */

/* libxdp explains a fallback to single-program mode in a warning; keep the
 * reason for `status`, show the rest only with -v. */
static char fallback_reason[128];

static int xdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = 0;
	if (strstr(line, "dispatcher") && strstr(line, "failed"))
		snprintf(fallback_reason, sizeof(fallback_reason), "%s",
			 strncmp(line, "libxdp: ", 8) ? line : line + 8);
	if (ml_log_level >= ML_DEBUG || (level == LIBXDP_WARN && !strstr(line, "dispatcher") &&
					 !strstr(line, "single prog")))
		fprintf(stderr, "libxdp: %s\n", line);
	return 0;
}

static const char *mode_name(__u32 m)
{
	switch (m) {
	case GD_MODE_NATIVE: return "native";
	case GD_MODE_SKB: return "skb";
	case GD_MODE_HW: return "hw";
	default: return "none";
	}
}

static __u32 gd_mode(enum xdp_attach_mode m)
{
	return m == XDP_MODE_NATIVE ? GD_MODE_NATIVE : m == XDP_MODE_SKB ? GD_MODE_SKB :
	       m == XDP_MODE_HW ? GD_MODE_HW : GD_MODE_NONE;
}

/* ---- prefix lists ------------------------------------------------------- */

struct lists {
	int fd[4];	/* allow4, deny4, allow6, deny6 */
	long n[4];
};

static int lpm_new(int v6)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_NO_PREALLOC);

	return bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, v6 ? "guard_lpm6" : "guard_lpm4",
			      v6 ? sizeof(struct gd_lpm6) : sizeof(struct gd_lpm4),
			      sizeof(__u32), GD_LPM_MAX, &mo);
}

static int lpm_add(struct lists *l, int deny, const char *tok, const char *where)
{
	unsigned char addr[16];
	unsigned int len;
	__u32 one = 1;
	int v6, i, r;

	if (ml_prefix_parse(tok, &v6, addr, &len)) {
		log_err("%s: bad prefix '%s' (want ADDR[/LEN])", where, tok);
		return -EINVAL;
	}
	i = (v6 ? 2 : 0) + deny;
	if (v6) {
		struct gd_lpm6 k = { .prefixlen = len };

		memcpy(k.addr, addr, 16);
		r = bpf_map_update_elem(l->fd[i], &k, &one, BPF_ANY);
	} else {
		struct gd_lpm4 k = { .prefixlen = len };

		memcpy(&k.addr, addr, 4);
		r = bpf_map_update_elem(l->fd[i], &k, &one, BPF_ANY);
	}
	if (r) {
		int e = errno;

		log_err("%s: cannot add prefix '%s': %s%s", where, tok, strerror(e),
			e == ENOSPC || e == E2BIG ? " (at most 65536 per list and family)" : "");
		return -e;
	}
	l->n[i]++;
	return 0;
}

static int lpm_add_text(struct lists *l, int deny, const char *text, const char *where)
{
	char *tmp = strdup(text), *tok, *save = NULL;
	int r = 0;

	if (!tmp)
		return -ENOMEM;
	for (tok = strtok_r(tmp, " ", &save); tok && !r; tok = strtok_r(NULL, " ", &save))
		r = lpm_add(l, deny, tok, where);
	free(tmp);
	return r;
}

struct lpm_file {
	struct lists *l;
	int deny;
};

static int lpm_add_tok(void *ctx, const char *tok, const char *where)
{
	struct lpm_file *lf = ctx;

	return lpm_add(lf->l, lf->deny, tok, where);
}

static int lpm_add_file(struct lists *l, int deny, const char *path)
{
	struct lpm_file lf = { l, deny };

	return ml_prefix_file(path, deny ? "deny-file" : "allow-file", lpm_add_tok, &lf);
}

static void lists_close(struct lists *l)
{
	int i;

	for (i = 0; i < 4; i++)
		if (l->fd[i] >= 0)
			close(l->fd[i]);
}

static int lists_build(struct lists *l, const struct ml_guard_opts *g)
{
	int i, r;

	for (i = 0; i < 4; i++) {
		l->n[i] = 0;
		l->fd[i] = lpm_new(i >= 2);
	}
	for (i = 0; i < 4; i++)
		if (l->fd[i] < 0) {
			r = -errno;
			log_err("cannot create a prefix list (LPM trie): %s", strerror(errno));
			lists_close(l);
			return r;
		}
	if ((r = lpm_add_text(l, 0, g->allow, "allow")) ||
	    (r = lpm_add_text(l, 1, g->deny, "deny")) ||
	    (g->allow_file[0] && (r = lpm_add_file(l, 0, g->allow_file))) ||
	    (g->deny_file[0] && (r = lpm_add_file(l, 1, g->deny_file)))) {
		lists_close(l);
		return r;
	}
	return 0;
}

/* ---- publish: idle slot, then flip ------------------------------------------ */

static void fill_config(struct gd_config *c, const struct ml_opts *o, unsigned int gen)
{
	const struct ml_guard_opts *g = &o->guard;
	int i;

	memset(c, 0, sizeof(*c));
	c->rate = g->syn_rate;
	c->burst = g->syn_burst;
	c->generation = gen;
	c->mask4 = htonl(g->prefix4 >= 32 ? ~0u : ~0u << (32 - g->prefix4));
	for (i = 0; i < 4; i++) {
		int bits = (int)g->prefix6 - 32 * i;

		c->mask6[i] = bits >= 32 ? ~0u : bits <= 0 ? 0 : htonl(~0u << (32 - bits));
	}
	for (i = 0; i < o->nlisten; i++) {
		const struct sockaddr_in *in = (const void *)&o->listen[i].ss;
		const struct sockaddr_in6 *in6 = (const void *)&o->listen[i].ss;
		unsigned int port = ntohs(o->listen[i].ss.ss_family == AF_INET ?
					  in->sin_port : in6->sin6_port);

		c->ports[port >> 6] |= 1ULL << (port & 63);
	}
}

/* The responder's replies (with their checksum prefix sums), dialect,
 * ports and key into its idle slot, which its own control word flips to:
 * new sessions greet from it; a session keeps the slot it was greeted from. */
static int xr_publish(struct ml_guard *gd, const struct ml_opts *o, const struct gd_config *g,
		      unsigned int idle, unsigned int gen)
{
	struct xr_config *c = calloc(1, sizeof(*c));
	struct ml_config mc;
	struct xr_ctl ctl = { .active = idle };
	__u32 zero = 0, op;
	int r = 0;

	if (!c)
		return -ENOMEM;
	ml_render(&mc, o);
	c->dialect = mc.dialect;
	c->generation = gen;
	c->key[0] = gd->key[0];
	c->key[1] = gd->key[1];
	_Static_assert(sizeof(c->ports) == sizeof(g->ports), "the same port map");
	memcpy(c->ports, g->ports, sizeof(c->ports));
	for (op = 0; op < ML_OP__MAX; op++)
		xr_reply_fill(&c->replies[op], mc.replies[op].text, mc.replies[op].len);
	if (bpf_map_update_elem(bpf_map__fd(gd->skel->maps.xr_cfg), &idle, c, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(gd->skel->maps.xr_ctl), &zero, &ctl, BPF_ANY))
		r = -errno;
	if (r)
		log_err("publishing the XDP responder's replies: %s", strerror(-r));
	free(c);
	return r;
}

static int publish(struct ml_guard *gd, const struct ml_opts *o, unsigned int gen)
{
	struct gd_config *c = calloc(1, sizeof(*c));
	struct gd_ctl ctl;
	struct lists l;
	unsigned int idle = gd->slot ^ 1;
	__u32 zero = 0;
	int outer[4] = {
		bpf_map__fd(gd->skel->maps.guard_allow4), bpf_map__fd(gd->skel->maps.guard_deny4),
		bpf_map__fd(gd->skel->maps.guard_allow6), bpf_map__fd(gd->skel->maps.guard_deny6),
	};
	int i, r = 0;

	if (!c)
		return -ENOMEM;
	if ((r = lists_build(&l, &o->guard))) {
		free(c);
		return r;
	}
	fill_config(c, o, gen);
	if (gd->respond && (r = xr_publish(gd, o, c, idle, gen))) {
		lists_close(&l);
		free(c);
		return r;
	}
	/* The idle slot's config and lists first, then one word flips them
	 * all: a packet sees the old generation or the new, never a mix. */
	for (i = 0; i < 4 && !r; i++)
		if (bpf_map_update_elem(outer[i], &idle, &l.fd[i], BPF_ANY))
			r = -errno;
	if (!r && bpf_map_update_elem(bpf_map__fd(gd->skel->maps.guard_cfg), &idle, c, BPF_ANY))
		r = -errno;
	ctl.active = idle;
	if (!r && bpf_map_update_elem(bpf_map__fd(gd->skel->maps.guard_ctl), &zero, &ctl, BPF_ANY))
		r = -errno;
	if (!r) {
		gd->slot = idle;
		log_info("xdp guard: syn-rate %u/s, burst %u, per /%u and /%u; allow %ld+%ld, "
		     "deny %ld+%ld prefixes (IPv4+IPv6)", o->guard.syn_rate, o->guard.syn_burst,
		     o->guard.prefix4, o->guard.prefix6, l.n[0], l.n[2], l.n[1], l.n[3]);
	} else {
		log_err("publishing the guard's configuration: %s", strerror(-r));
	}
	lists_close(&l);	/* the outer maps hold the new tries; the old go */
	free(c);
	return r;
}

/* ---- attach ------------------------------------------------------------- */

/* Is something already on ifindex that we may not join? Says what. */
static int iface_busy(const char *name, int ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *main_prog;
	int busy = 0;

	if (libxdp_get_error(mp))
		return 0;	/* nothing attached */
	main_prog = xdp_multiprog__main_prog(mp);
	if (main_prog && xdp_multiprog__is_legacy(mp)) {
		log_err("%s already has XDP program %s (id %u, %s mode) attached alone, "
		    "not through libxdp's dispatcher; mailless will not replace it. "
		    "The two can run side by side only where the kernel allows libxdp's "
		    "dispatcher (freplace programs, BPF_PROG_TYPE_EXT)%s%s%s. Detach it "
		    "first (xdp-loader unload %s --all) or run mailless without --xdp %s",
		    name, xdp_program__name(main_prog), xdp_program__id(main_prog),
		    mode_name(gd_mode(xdp_multiprog__attach_mode(mp))),
		    fallback_reason[0] ? "; here: " : "", fallback_reason,
		    fallback_reason[0] ? "" : "", name, name);
		busy = 1;
	}
	xdp_multiprog__close(mp);
	return busy;
}

/* Did libxdp put us behind its dispatcher on ifindex? */
static int behind_dispatcher(int ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	int r;

	if (libxdp_get_error(mp))
		return 0;
	r = !xdp_multiprog__is_legacy(mp);
	xdp_multiprog__close(mp);
	return r;
}

static __u64 own_netns_cookie(void)
{
	socklen_t len = sizeof(__u64);
	__u64 c = 0;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s >= 0) {
		getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &c, &len);
		close(s);
	}
	return c;
}

/*
 * Interface indexes mean something only in the guard's network namespace.
 * If we are elsewhere and the recording process lives, step into its
 * namespace (setns) for the query; *back gets our own to return to.
 * Returns 0 when in the right namespace, -1 when it cannot be reached.
 */
static int enter_netns(const struct gd_info *inf, int *back)
{
	char p[64];
	int fd;

	*back = -1;
	if (!inf->netns_cookie || inf->netns_cookie == own_netns_cookie())
		return 0;
	snprintf(p, sizeof(p), "/proc/%u/ns/net", inf->pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	*back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*back < 0 || setns(fd, CLONE_NEWNET) || own_netns_cookie() != inf->netns_cookie) {
		if (*back >= 0 && setns(*back, CLONE_NEWNET) == 0)
			close(*back);
		*back = -1;
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void leave_netns(int back)
{
	if (back >= 0) {
		if (setns(back, CLONE_NEWNET))
			log_warn("cannot return to our network namespace: %s", strerror(errno));
		close(back);
	}
}

/* Detach the guard from every interface recorded in a pinned guard_info
 * (a crashed run's or our own) and remove the guard's pins. Returns the
 * pins left, or -1 (and touches nothing) if the interfaces are in another
 * network namespace we cannot reach. */
static int detach_recorded(const char *dir, int verbose)
{
	char p[PATH_MAX + 64];
	struct gd_info inf = {};
	__u32 zero = 0, i;
	int fd, left = 0, back = -1;

	ml_pin_path(p, sizeof(p), dir, "guard_info");
	fd = bpf_obj_get(p);
	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &inf);
		close(fd);
	}
	if (inf.nif && enter_netns(&inf, &back)) {
		/* Its process is gone and we are in another namespace: the
		 * interfaces cannot be named from here. Keep the pins. */
		log_err("the XDP guard was attached in another network namespace (cookie %llu) "
		    "to %s%s: run this there (nsenter --net=/run/netns/NAME mailless unload)",
		    (unsigned long long)inf.netns_cookie, inf.ifname[0], inf.nif > 1 ? ", ..." : "");
		return -1;
	}
	for (i = 0; i < inf.nif && i < GD_IFACE_MAX; i++) {
		struct xdp_program *prog = xdp_program__from_id(inf.prog_id);
		int e;

		if (libxdp_get_error(prog))
			break;	/* the program is gone: so are its attachments */
		e = xdp_program__detach(prog, inf.ifindex[i],
					inf.mode[i] == GD_MODE_SKB ? XDP_MODE_SKB :
					inf.mode[i] == GD_MODE_NATIVE ? XDP_MODE_NATIVE :
					XDP_MODE_UNSPEC, 0);
		if (!e && verbose)
			printf("detached the XDP guard from %s\n", inf.ifname[i]);
		else if (e && e != -ENOENT && verbose)
			printf("the XDP guard was not attached to %s (ifindex %u) any more\n",
			       inf.ifname[i], inf.ifindex[i]);
		xdp_program__close(prog);
	}
	leave_netns(back);
	ml_pin_path(p, sizeof(p), dir, GD_PROG_PIN);
	if (unlink(p) && errno != ENOENT)
		left++;
	for (i = 0; i < N(gd_maps); i++) {
		ml_pin_path(p, sizeof(p), dir, gd_maps[i]);
		if (unlink(p) && errno != ENOENT)
			left++;
	}
	return left;
}

static int pin_all(struct ml_guard *gd)
{
	char p[PATH_MAX + 64];
	struct bpf_map *map;

	bpf_object__for_each_map(map, gd->skel->obj) {
		const char *name = bpf_map__name(map);

		/* The responder's maps only where it answers; never the
		 * per-CPU scratch of one packet, nor the ring only this
		 * process reads. */
		if (!strncmp(name, "xr_", 3) && (!gd->respond || !strcmp(name, "xr_seg") ||
						 !strcmp(name, "xr_scratch") ||
						 !strcmp(name, "xr_events")))
			continue;
		if ((strncmp(name, "guard_", 6) && strncmp(name, "xr_", 3)) || strchr(name, '.'))
			continue;
		ml_pin_path(p, sizeof(p), gd->pin_dir, name);
		if (bpf_map__pin(map, p))
			return -errno;
	}
	ml_pin_path(p, sizeof(p), gd->pin_dir, GD_PROG_PIN);
	if (bpf_obj_pin(xdp_program__fd(gd->prog), p))
		return -errno;
	return 0;
}

int ml_guard_start(struct ml_guard **gp, const struct ml_opts *o)
{
	const struct ml_guard_opts *g = &o->guard;
	enum xdp_attach_mode want = g->mode == ML_XDP_NATIVE ? XDP_MODE_NATIVE :
				    g->mode == ML_XDP_SKB ? XDP_MODE_SKB : XDP_MODE_UNSPEC;
	DECLARE_LIBXDP_OPTS(xdp_program_opts, xo);
	struct ml_guard *gd;
	socklen_t len = sizeof(__u64);
	__u32 zero = 0;
	int i, e, s;

	if (!g->niface)
		return 0;
	if ((e = ml_need_caps("the XDP guard", ML_CAP_BPF | ML_CAP_NET_ADMIN)))
		return e;
	libxdp_set_print(xdp_print);
	gd = calloc(1, sizeof(*gd));
	if (!gd)
		return -ENOMEM;
	*gp = gd;
	snprintf(gd->pin_dir, sizeof(gd->pin_dir), "%s", o->pin_dir);
	/* A crashed run's guard: detach it and drop its pins first. */
	detach_recorded(gd->pin_dir, 0);

	for (i = 0; i < g->niface; i++) {
		gd->info.ifindex[i] = if_nametoindex(g->iface[i]);
		if (!gd->info.ifindex[i]) {
			log_err("xdp: no interface '%s' in this network namespace", g->iface[i]);
			e = -ENODEV;
			goto fail;
		}
		snprintf(gd->info.ifname[i], GD_IFNAME_MAX, "%s", g->iface[i]);
	}
	gd->skel = guard_bpf__open();
	if (!gd->skel) {
		e = -errno;
		log_err("opening the XDP guard object: %s", strerror(errno));
		goto fail;
	}
	/* The responder's flow table only where it answers (an LRU hash is
	 * allocated whole at load). */
	gd->respond = o->engine == ML_ENGINE_XDP;
	bpf_map__set_max_entries(gd->skel->maps.xr_flows, gd->respond ? XR_FLOWS : 1);
	bpf_map__set_max_entries(gd->skel->maps.xr_greet, gd->respond ? XR_GREET_MAX : 1);
	/* One program of the two: the guard alone loads on 5.10, the one with
	 * the responder needs bpf_loop (5.17). */
	xo.prog_name = gd->respond ? "ml_guard_xr" : "ml_guard";
	bpf_program__set_autoload(gd->respond ? gd->skel->progs.ml_guard :
				  gd->skel->progs.ml_guard_xr, false);
	if (gd->respond && getrandom(gd->key, sizeof(gd->key), 0) != sizeof(gd->key)) {
		e = -errno;
		log_err("getrandom: the XDP responder's cookie key: %s", strerror(errno));
		goto fail;
	}
	if (gd->respond) {
		/* The responder attaches alone, never behind libxdp's
		 * dispatcher: there it would be an extension program, and
		 * Linux refuses an extension that changes packet data
		 * (bpf_xdp_adjust_head) in place of a dispatcher slot that
		 * does not (Debian 13's 6.12 with libxdp 1.3: "Invalid
		 * argument"). So it is loaded here, as a plain XDP program. */
		if (guard_bpf__load(gd->skel)) {
			e = -errno;
			log_err("loading the XDP guard with the responder: %s (the verifier's "
				"words are above; -v shows all)", strerror(errno));
			goto fail;
		}
		gd->prog = xdp_program__from_fd(bpf_program__fd(gd->skel->progs.ml_guard_xr));
	} else {
		xo.obj = gd->skel->obj;
		gd->prog = xdp_program__create(&xo);
	}
	if ((e = (int)libxdp_get_error(gd->prog))) {
		gd->prog = NULL;
		log_err("libxdp: preparing the XDP guard: %s", strerror(-e));
		goto fail;
	}
	for (i = 0; i < g->niface; i++) {
		const char *name = g->iface[i];
		int ifindex = gd->info.ifindex[i];
		enum xdp_attach_mode got;

		if (iface_busy(name, ifindex)) {
			e = -EBUSY;
			goto fail;
		}
		/* libxdp loads the object on the first attach: as an freplace
		 * program behind its dispatcher where the kernel allows, as a
		 * plain XDP program otherwise. Until publish() below the config
		 * is all-zero, which serves no port: everything passes. */
		if (gd->respond)	/* alone (see above); never over another */
			e = bpf_xdp_attach(ifindex, xdp_program__fd(gd->prog),
					   XDP_FLAGS_UPDATE_IF_NOEXIST |
					   (want == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE :
					    want == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : 0), NULL) ?
			    -errno : 0;
		else
			e = xdp_program__attach(gd->prog, ifindex, want, 0);
		if (e) {
			if (want == XDP_MODE_NATIVE && (e == -EOPNOTSUPP || e == -EINVAL))
				log_err("xdp: native mode is not available on %s (its driver has no "
				    "XDP support: %s); use --xdp-mode skb, or auto", name,
				    strerror(-e));
			else if (e == -ENOENT)
				log_err("xdp: attaching the guard to %s: libxdp found no "
				    "xdp-dispatcher.o (package libxdp1; LIBXDP_OBJECT_PATH "
				    "names another directory)", name);
			else if (e == -EEXIST || e == -EBUSY)
				log_err("xdp: %s already has an XDP program that libxdp cannot join "
				    "(%s); mailless did not replace it", name, strerror(-e));
			else
				log_err("xdp: attaching the guard to %s: %s", name, strerror(-e));
			goto fail;
		}
		gd->attached[i] = 1;
		gd->info.nif = i + 1;
		got = xdp_program__is_attached(gd->prog, ifindex);
		gd->info.mode[i] = gd_mode(got);
		gd->info.multiprog[i] = behind_dispatcher(ifindex);
		if (want == XDP_MODE_UNSPEC && got == XDP_MODE_SKB)
			log_info("xdp: native XDP is not available on %s; libxdp attached the "
			     "guard in skb (generic) mode", name);
		log_info("xdp guard on %s: %s mode, %s", name, mode_name(gd->info.mode[i]),
		     gd->respond ? "with the responder, alone (it never runs behind "
		     "libxdp's dispatcher; another XDP program cannot join it)" :
		     gd->info.multiprog[i] ? "through libxdp's dispatcher (other XDP "
		     "programs can run beside it)" : "alone (libxdp's dispatcher is "
		     "unavailable here; another XDP program cannot join it)");
	}
	gd->slot = 1;	/* publish() writes slot 0 first */
	if ((e = publish(gd, o, 1)))
		goto fail;
	gd->info.pid = getpid();
	gd->info.prog_id = xdp_program__id(gd->prog);
	snprintf(gd->info.fallback, sizeof(gd->info.fallback), "%s", fallback_reason);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &gd->info.netns_cookie, &len);
		close(s);
	}
	bpf_map_update_elem(bpf_map__fd(gd->skel->maps.guard_info), &zero, &gd->info, BPF_ANY);
	if ((e = pin_all(gd))) {
		log_err("pinning the XDP guard under %s: %s", gd->pin_dir, strerror(-e));
		goto fail;
	}
	return 0;
fail:
	ml_guard_stop(gp);
	return e ? e : -EINVAL;
}

int ml_guard_reload(struct ml_guard *gd, const struct ml_opts *o)
{
	static unsigned int gen = 1;

	if (publish(gd, o, ++gen)) {
		log_err("reload: keeping the guard's previous limits and prefix lists");
		return -EINVAL;
	}
	return 0;
}

void ml_guard_stop(struct ml_guard **gp)
{
	struct ml_guard *gd = *gp;
	char p[PATH_MAX + 64];
	unsigned int i;

	if (!gd)
		return;
	for (i = 0; i < GD_IFACE_MAX && !ml_privs_dropped; i++) {
		int e;

		if (!gd->attached[i])
			continue;
		e = xdp_program__detach(gd->prog, gd->info.ifindex[i],
					gd->info.mode[i] == GD_MODE_SKB ? XDP_MODE_SKB :
					gd->info.mode[i] == GD_MODE_NATIVE ? XDP_MODE_NATIVE :
					XDP_MODE_UNSPEC, 0);
		if (e)
			log_warn("xdp: detaching the guard from %s: %s", gd->info.ifname[i],
			     strerror(-e));
	}
	for (i = 0; i < N(gd_maps) && !ml_privs_dropped; i++) {
		ml_pin_path(p, sizeof(p), gd->pin_dir, gd_maps[i]);
		unlink(p);
	}
	ml_pin_path(p, sizeof(p), gd->pin_dir, GD_PROG_PIN);
	if (!ml_privs_dropped)	/* else `mailless unload`'s (privs.c) */
		unlink(p);
	if (gd->prog)
		xdp_program__close(gd->prog);
	if (gd->skel)
		guard_bpf__destroy(gd->skel);
	free(gd);
	*gp = NULL;
}

/* ---- counters, status, unload ------------------------------------------- */

/* Sum the per-CPU values (arrays of n __u64 at index 0) of map fd into out. */
static int sum_percpu(int fd, uint64_t *out, size_t n)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	__u32 zero = 0;
	__u64 *per;
	size_t k;

	if (ncpu <= 0 || !(per = calloc((size_t)ncpu * n, sizeof(*per))))
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		free(per);
		return -errno;
	}
	for (i = 0; i < ncpu; i++)
		for (k = 0; k < n; k++)
			out[k] += per[(size_t)i * n + k];
	free(per);
	return 0;
}

/* The guard's counters, and the responder's where xfd and dfd are open. */
static int read_counters(int gfd, int xfd, int dfd, struct ml_xdp_counters *x)
{
	int r;

	memset(x, 0, sizeof(*x));
	if ((r = sum_percpu(gfd, x->v, GD_ST__MAX)))
		return r;
	if (xfd < 0 || dfd < 0)
		return 0;
	_Static_assert(sizeof(struct xr_stats) == XR_ST__MAX * sizeof(__u64), "xr_stats");
	_Static_assert(sizeof(struct ml_stats) == ML_ST__MAX * sizeof(__u64), "ml_stats");
	if (sum_percpu(xfd, x->v + GD_ST__MAX, XR_ST__MAX) ||
	    ml_stats_add_percpu(dfd, &x->dialog))
		return 0;	/* the guard's alone */
	x->responder = 1;
	return 0;
}

/* ---- the greeting's resend (--engine xdp) ---------------------------------- */

/* The client's duplicate ACK that r describes, as it would arrive: enough
 * for the responder to take it as such (it checks no checksum). */
static size_t dup_ack(unsigned char *f, const struct xr_flow *k, const struct xr_resend *r)
{
	struct ethhdr *eth = (void *)f;
	size_t l3 = r->v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	unsigned char *t = f + sizeof(*eth) + l3;
	struct tcphdr *th = (void *)t;
	size_t tl = r->ts ? 32 : 20;

	memcpy(eth->h_dest, r->dmac, 6);
	memcpy(eth->h_source, r->smac, 6);
	if (r->v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		ip6->payload_len = htons(tl);
		memcpy(&ip6->saddr, k->raddr, 16);
		memcpy(&ip6->daddr, k->laddr, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->tot_len = htons(l3 + tl);
		ip->saddr = k->raddr[3];
		ip->daddr = k->laddr[3];
	}
	th->source = k->rport;
	th->dest = k->lport;
	th->seq = htonl(r->seq);
	th->ack_seq = htonl(r->ack);
	th->doff = tl / 4;
	th->ack = 1;
	th->window = htons(r->win);
	if (r->ts) {	/* NOP NOP TS, its echo 0: the responder echoes tsval */
		uint32_t v = htonl(r->tsval);

		t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;
		memcpy(t + 24, &v, 4);
	}
	return sizeof(*eth) + l3 + tl;
}

/*
 * Greetings not acknowledged after XR_RESEND_MS, doubling, are sent again:
 * the program runs on the client's duplicate ACK in live-frames mode
 * (BPF_PROG_TEST_RUN, Linux 5.18), answers it as it would the real one,
 * and the kernel sends its XDP_TX out of the interface. That needs the
 * interface's native XDP transmit (ndo_xdp_xmit; veth: a program or GRO on
 * the peer). Returns the milliseconds until the next sweep, -1 if none.
 */
int ml_guard_resend(struct ml_guard *gd)
{
	static struct xr_flow due[XR_GREET_MAX];
	static uint64_t last_ms;
	static int warned;
	uint64_t now_ms = ml_now_ms(), now_ns;
	struct xr_flow key, *prev = NULL;
	struct xr_resend r;
	struct timespec ts;
	int fd, n = 0, i, seen = 0;

	if (!gd || !gd->skel || !gd->respond)
		return -1;
	if (now_ms - last_ms < 200)
		return (int)(200 - (now_ms - last_ms));
	last_ms = now_ms;
	clock_gettime(CLOCK_MONOTONIC, &ts);	/* bpf_ktime_get_ns()'s clock */
	now_ns = (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	fd = bpf_map__fd(gd->skel->maps.xr_greet);
	/* Bounded: a key deleted under the walk restarts it at the first. */
	while (n < XR_GREET_MAX && seen++ < 2 * XR_GREET_MAX &&
	       !bpf_map_get_next_key(fd, prev, &key)) {
		due[n] = key;
		prev = &due[n];
		if (!bpf_map_lookup_elem(fd, &key, &r) &&
		    now_ns - r.sent_ns >= (uint64_t)XR_RESEND_MS * 1000000 << (r.tries < 8 ? r.tries : 8))
			n++;
	}
	for (i = 0; i < n; i++) {
		unsigned char f[128] = { 0 };
		struct xdp_md ctx = { 0 };
		size_t len;

		if (bpf_map_lookup_elem(fd, &due[i], &r))
			continue;
		if (r.tries >= XR_RESEND_TRIES) {
			bpf_map_delete_elem(fd, &due[i]);
			continue;
		}
		len = dup_ack(f, &due[i], &r);
		ctx.data_end = len;
		ctx.ingress_ifindex = r.ifindex;
		{
			LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = len,
				    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
				    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .repeat = 1);

			if (bpf_prog_test_run_opts(xdp_program__fd(gd->prog), &o) && !warned++)
				log_warn("xdp: sending a greeting again (live-frames test run): %s; "
					 "a lost greeting is not resent here (it needs native XDP "
					 "transmit on the interface)", strerror(errno));
		}
		/* No XDP_TX (the flow is gone, the client denied): count the
		 * try all the same, so that the entry ends. */
		if (!bpf_map_lookup_elem(fd, &due[i], &r) && r.sent_ns < now_ns) {
			r.tries++;
			r.sent_ns = now_ns;
			bpf_map_update_elem(fd, &due[i], &r, BPF_EXIST);
		}
	}
	return 200;
}

int ml_guard_events_fd(const struct ml_guard *gd)
{
	return gd && gd->skel && gd->respond ? bpf_map__fd(gd->skel->maps.xr_events) : -1;
}

int ml_guard_counters(const struct ml_guard *gd, struct ml_xdp_counters *x)
{
	if (!gd || !gd->skel)
		return -ENOENT;
	return read_counters(bpf_map__fd(gd->skel->maps.guard_stats),
			     gd->respond ? bpf_map__fd(gd->skel->maps.xr_stats) : -1,
			     gd->respond ? bpf_map__fd(gd->skel->maps.xr_dialog) : -1, x);
}

int ml_guard_counters_pinned(const char *dir, struct ml_xdp_counters *x)
{
	int fd = ml_pinned_fd(dir, "guard_stats"), xfd, dfd, r;

	if (fd < 0)
		return -ENOENT;
	xfd = ml_pinned_fd(dir, "xr_stats");
	dfd = ml_pinned_fd(dir, "xr_dialog");
	r = read_counters(fd, xfd, dfd, x);
	close(fd);
	if (xfd >= 0)
		close(xfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* Is program id on ifindex now (alone or behind the dispatcher)? */
static int on_iface(int ifindex, __u32 id)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *p = NULL;
	int found = 0;

	if (libxdp_get_error(mp))
		return 0;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		found = p && xdp_program__id(p) == id;
	} else {
		while ((p = xdp_multiprog__next_prog(p, mp)))
			if (xdp_program__id(p) == id)
				found = 1;
	}
	xdp_multiprog__close(mp);
	return found;
}

/* ml_guard or ml_guard_xr (with the responder): the name of program id. */
static const char *prog_name(__u32 id)
{
	static char name[BPF_OBJ_NAME_LEN];
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	snprintf(name, sizeof(name), "ml_guard");
	if (fd < 0)
		return name;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.name[0])
		snprintf(name, sizeof(name), "%s", info.name);
	close(fd);
	return name;
}

void ml_guard_status(const char *dir, int json)
{
	char p[PATH_MAX + 64];
	struct gd_info inf = {};
	__u32 zero = 0, i;
	int fd, back = -1, away;

	ml_pin_path(p, sizeof(p), dir, "guard_info");
	fd = bpf_obj_get(p);
	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &inf)) {
		if (fd >= 0)
			close(fd);
		if (json)
			printf(",\"xdp\":null");
		else
			printf("xdp guard: not in use\n");
		return;
	}
	close(fd);
	libxdp_set_print(xdp_print);
	away = enter_netns(&inf, &back);
	if (json) {
		printf(",\"xdp\":{\"program\":\"%s\",\"id\":%u,\"fallback\":", prog_name(inf.prog_id),
		       inf.prog_id);
		ml_json_strn(stdout, inf.fallback, sizeof(inf.fallback));
		printf(",\"interfaces\":[");
	} else {
		printf("xdp guard: program %s id %u\n", prog_name(inf.prog_id), inf.prog_id);
	}
	for (i = 0; i < inf.nif && i < GD_IFACE_MAX; i++) {
		int on = away ? 0 : on_iface(inf.ifindex[i], inf.prog_id);

		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			ml_json_strn(stdout, inf.ifname[i], sizeof(inf.ifname[i]));
			printf(",\"ifindex\":%u,\"attached\":%s,\"mode\":\"%s\",\"multiprog\":%s}",
			       inf.ifindex[i], on ? "true" : "false", mode_name(inf.mode[i]),
			       inf.multiprog[i] ? "true" : "false");
		} else
			printf("  on %s (ifindex %u): %s, %s mode, %s\n", inf.ifname[i],
			       inf.ifindex[i], away ? "in another network namespace" :
			       on ? "attached" : "NOT attached",
			       mode_name(inf.mode[i]), inf.multiprog[i] ?
			       "beside others through libxdp's dispatcher" :
			       "alone (libxdp single-program mode)");
	}
	leave_netns(back);
	if (json) {
		printf("]}");
	} else {
		if (inf.fallback[0])
			printf("  libxdp's dispatcher was unavailable: %s\n", inf.fallback);
		printf("  maps:");
		for (i = 0; i < N(gd_maps); i++)
			printf(" %s/%s", dir, gd_maps[i]);
		printf("\n");
	}
}

int ml_guard_unload(const char *dir)
{
	libxdp_set_print(xdp_print);
	return detach_recorded(dir, 1);
}
