// SPDX-License-Identifier: GPL-2.0
/*
 * loadgen.c - SMTP session load generator: throughput and latency of whole
 * sessions (connect to the server's close) against mailless or any SMTP
 * server, checking every reply line on the way.
 *
 * One epoll loop per thread (-T, default 1) over non-blocking sockets; each
 * thread keeps its share of -c sessions in flight and starts a new one as soon
 * as one ends. A session is a script: the replies it expects (greeting
 * included), and what to write once each reply is complete. Replies are
 * parsed byte by byte as they arrive, so however the server cuts its segments
 * and however long a multi-line reply is, only the last line ("250 ")
 * completes a reply.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o loadgen tools/loadgen.c
 * (or make tools/loadgen: .output/tools/loadgen). See tools/README.md.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC		1000000000ULL
#define MAX_THREADS	64
#define MAX_REPLIES	104	/* long: greeting + 100 commands, with room */
#define REPLY_LINE_MAX	512	/* RFC 5321 4.5.3.1.5, CRLF included */
#define HEAD_LEN	96	/* start of a reply line kept for messages */
#define LAT_CAP		(1u << 22)	/* latencies kept in all: 16 MiB; then a uniform sample */
#define MAX_DETAILS	10	/* errors described one by one */
#define IDLE_RAMP	256	/* idle: connections opening at once, per thread */
#define SCAN_NS		(50 * 1000000ULL)	/* timeout scan period */
#define FD_SPARE	16	/* descriptors besides the sessions: stdio, epoll... */
#define CONNFAIL_BURST	64	/* consecutive connect errors, then one try per ms */

enum shape {
	SH_GREET_QUIT, SH_DIALOG, SH_PIPELINED, SH_LONG, SH_IDLE,
	SH_QUIT_CLOSE, SH_SERVER_CLOSE, SH_RESET, SH_HALF_CLOSE, SH_NOREAD, SH_MIXED,
	SH_COUNT
};
static const char *const shape_name[SH_COUNT] = {
	[SH_GREET_QUIT] = "greet-quit", [SH_DIALOG] = "dialog",
	[SH_PIPELINED] = "pipelined", [SH_LONG] = "long", [SH_IDLE] = "idle",
	[SH_QUIT_CLOSE] = "quit-close", [SH_SERVER_CLOSE] = "server-close",
	[SH_RESET] = "reset", [SH_HALF_CLOSE] = "half-close", [SH_NOREAD] = "noread",
	[SH_MIXED] = "mixed",
};

/* mixed: what each session does, drawn by a seeded PRNG with these weights
 * (percent; tools/README.md lists them). */
static const struct { enum shape shape; unsigned weight; } mix[] = {
	{ SH_QUIT_CLOSE, 30 }, { SH_SERVER_CLOSE, 20 }, { SH_RESET, 10 },
	{ SH_HALF_CLOSE, 10 }, { SH_DIALOG, 10 }, { SH_PIPELINED, 10 },
	{ SH_LONG, 5 }, { SH_NOREAD, 5 },
};
#define MIX_TOTAL 100

enum dialect { D_RCPT, D_RFC7504 };

enum ekind {
	E_CONNECT,	/* connect failed or timed out */
	E_TIMEOUT,	/* a reply did not come within -t */
	E_WRONG_CODE,	/* a well-formed reply with an unexpected code */
	E_MALFORMED,	/* not a reply line: no code, bare LF, over 512 octets */
	E_EARLY_CLOSE,	/* server closed before the reply we waited for */
	E_RESET,	/* ECONNRESET, EPIPE and other socket errors */
	E_NO_CLOSE,	/* 221 came, the close did not within -t */
	E_MAX
};
static const char *const ekind_name[E_MAX] = {
	"connect", "timeout", "wrong_code", "malformed", "early_close", "reset",
	"no_close",
};

/* The commands a script is made of, and what each dialect answers. */
enum cmd { C_GREET, C_EHLO, C_MAIL, C_RCPT, C_DATA, C_NOOP, C_RSET, C_QUIT };
static const struct {
	const char *name, *line;
	int code[2];	/* [D_RCPT], [D_RFC7504] */
} cmds[] = {
	[C_GREET] = { "the greeting", NULL, { 220, 521 } },
	[C_EHLO] = { "EHLO", "EHLO loadgen.invalid\r\n", { 250, 521 } },
	[C_MAIL] = { "MAIL", "MAIL FROM:<loadgen@loadgen.invalid>\r\n", { 250, 521 } },
	[C_RCPT] = { "RCPT", "RCPT TO:<postmaster@example.org>\r\n", { 521, 521 } },
	[C_DATA] = { "DATA", "DATA\r\n", { 554, 521 } },
	[C_NOOP] = { "NOOP", "NOOP\r\n", { 250, 521 } },
	[C_RSET] = { "RSET", "RSET\r\n", { 250, 521 } },
	[C_QUIT] = { "QUIT", "QUIT\r\n", { 221, 221 } },
};

/* What one session does: reply i must carry code[i] (unless --expect-any)
 * and answers what[i]; once it is complete, send[i] (if any) is written. */
struct script {
	int n;
	int code[MAX_REPLIES];
	const char *what[MAX_REPLIES];
	const char *send[MAX_REPLIES];
	size_t sendlen[MAX_REPLIES];
};

static struct {
	enum shape shape;
	enum dialect dialect;
	bool expect_any, allow_remote, quiet, json;
	int conc, threads;
	uint64_t total;		/* -n */
	double duration;	/* -d (idle: hold time) */
	double warmup, timeout;
	const char *target_arg;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char target[INET6_ADDRSTRLEN + 32];
	uint64_t seed;		/* --seed: mixed's choices */
	uint64_t noread_lines;	/* --noread-lines */
	uint64_t max_errors;	/* --max-errors: then stop; 0: never */
	double noread_hold;	/* --noread-hold: then the client closes; 0: never */
	struct script sc[SH_COUNT];	/* one per shape (mixed: none of its own) */
	uint64_t t0, warm_end, end_time, timeout_ns;
} g = {
	.shape = SH_DIALOG, .conc = 16, .threads = 1, .timeout = 10.0,
	.seed = 1, .noread_lines = 2000, .noread_hold = 0.05,
};

static char pipeline_buf[SH_COUNT][8192];	/* the pipelined shapes' one write */
static char *noread_buf;	/* noread: --noread-lines x "NOOP\r\n" */
static size_t noread_len;
static atomic_int stop_flag;	/* SIGINT/SIGTERM count */
static atomic_ullong nerrors;	/* failed sessions so far, all threads */

static char details[MAX_DETAILS][256];
static atomic_int ndetails;

enum phase {
	P_FREE,
	P_CONNECTING,	/* connect in progress */
	P_ACTIVE,	/* waiting for reply ridx */
	P_HOLD,		/* idle: greeting read, holding */
	P_CLOSING,	/* last reply read, waiting for the server's close */
	P_NOREAD,	/* noread: writing, not reading, until the server closes */
};

struct conn {
	int fd;
	uint8_t phase;
	uint8_t kind;	/* its shape (mixed: the one drawn) */
	bool shut;	/* half-close: SHUT_WR done */
	bool lenient;	/* noread: any well-formed reply, no script */
	bool counted;	/* started after warm-up */
	bool opening;	/* idle: not yet greeted */
	bool prev_cr;
	uint16_t ridx;	/* reply being waited for */
	uint16_t llen;	/* octets of the current line so far */
	int16_t mcode;	/* code of the current multi-line reply, or -1 */
	int16_t last_code;
	const char *wptr;	/* unsent bytes */
	size_t wleft;
	uint64_t t_start, deadline, id;
	uint64_t rx;	/* noread: octets received */
	uint64_t hold_end;	/* noread: the client closes then */
	const struct script *sc;
	char head[HEAD_LEN];
};

struct worker {
	int idx, ep, conc;
	pthread_t th;
	uint64_t quota;		/* counted sessions this thread starts (-n) */
	uint64_t started_counted, seq;
	struct conn *conns;
	int *freel;
	int nfree, active;
	/* results */
	uint64_t ok, warm_ok, aborted, err[E_MAX];
	uint64_t kind_ok[SH_COUNT], kind_err[SH_COUNT];	/* warm-up included */
	uint64_t nr_server_closed, nr_client_closed, nr_rx, nr_421;
	uint64_t mix_rng;
	uint64_t last_ok;	/* when the last counted session ended */
	bool addrnotavail, emfile;
	unsigned connfail;	/* connect errors in a row */
	uint64_t next_try;	/* while they go on: next start not before */
	uint32_t *lat;
	size_t nlat, latcap, latmax;
	uint64_t nseen, lat_sum, rng;
	uint32_t lat_min, lat_max;
	/* idle */
	int idle_state, opened, opening;
	uint64_t hold_start, hold_end, held;
	char buf[16384];
};

enum { IDLE_OPEN, IDLE_HOLD, IDLE_QUIT, IDLE_DONE };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&stop_flag, 1);
}

/* ---- errors and results ---- */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: loadgen [OPTIONS] HOST:PORT      (IPv6: [::1]:25)\n"
"Opens SMTP sessions against a server and reports sessions/s, errors by kind\n"
"and whole-session latency, checking the code of every reply line.\n"
"\n"
"  -s, --shape SHAPE      greet-quit | dialog (default) | pipelined | long | idle\n"
"                         | quit-close | server-close | reset | half-close\n"
"                         | noread | mixed\n"
"                           greet-quit: greeting, QUIT\n"
"                           dialog: EHLO, MAIL, RCPT, DATA, QUIT, each after the\n"
"                                   previous reply\n"
"                           pipelined: the same 5 commands in one write\n"
"                           long: 100 commands in one write (EHLO, MAIL,\n"
"                                 48 x RCPT+NOOP, RSET, QUIT)\n"
"                           idle: open -c sessions, read the greetings, hold\n"
"                                 them -d seconds (default 5), QUIT them all\n"
"                           quit-close: greeting, QUIT, 221, then close at once\n"
"                                 (no wait for the server's close: Postfix, Exim)\n"
"                           server-close: greet-quit: greeting, QUIT, 221, then\n"
"                                 the server's close\n"
"                           reset: greeting, EHLO, 250, then RST (SO_LINGER 0)\n"
"                           half-close: greeting, QUIT + shutdown(SHUT_WR), then\n"
"                                 221 and the server's close\n"
"                           noread: --noread-lines NOOPs in one write, never\n"
"                                 read; ends when the server closes, or the\n"
"                                 client closes --noread-hold s after writing\n"
"                           mixed: each session one of quit-close 30%%,\n"
"                                 server-close 20, reset 10, half-close 10,\n"
"                                 dialog 10, pipelined 10, long 5, noread 5\n"
"                                 (drawn from --seed)\n"
"  -c, --conc N           sessions in flight (default 16)\n"
"  -n, --sessions N       sessions to measure (default 10000)\n"
"  -d, --duration SECS    or: start sessions for SECS seconds\n"
"  -w, --warmup SECS      run SECS seconds first without counting (default 0)\n"
"  -t, --timeout SECS     a session must end within SECS, the server's close\n"
"                         after 221 included (idle: its opening, and its QUIT\n"
"                         phase) (default 10)\n"
"  -T, --threads N        threads, each with its own epoll and share of -c\n"
"                         (default 1)\n"
"      --dialect rcpt|rfc7504  expected codes (default rcpt): rcpt: 220, EHLO\n"
"                         and MAIL 250, RCPT 521, DATA 554, NOOP/RSET 250;\n"
"                         rfc7504: 521 to everything; QUIT 221 in both\n"
"      --expect-any       accept any well-formed reply; a session must still\n"
"                         end with 221 and a close, or a close after 5xx/421\n"
"      --allow-remote     allow a target that is neither loopback nor an\n"
"                         address of an interface in this network namespace\n""      --max-errors N     stop after N failed sessions (those in flight are\n"
"                         counted as aborted; default 0: never stop)\n"
"      --seed N           mixed: seed of the choices (default 1)\n"
"      --noread-lines N   noread: NOOP lines in its one write (default 2000)\n"
"      --noread-hold SECS noread: close this long after the write is out, if\n"
"                         the server has not closed (default 0.05; 0: wait for\n"
"                         the server's close, an error after -t)\n"
"  -q, --quiet            print only the RESULT line\n"
"  -j, --json             print one JSON object instead of text\n"
"  -h, --help             this help\n"
"\n"
"The last line of text output is machine-readable:\n"
"  RESULT shape=S conc=N sessions=N secs=F rate=F errors=N p50_us=N p99_us=N p999_us=N\n"
"  RESULT shape=idle conc=N held=N errors=N secs=F p50_us=N p99_us=N p999_us=N\n"
"Errors count every session, warm-up ones too. Ctrl-C prints what was\n"
"measured (idle: the first ends the hold and QUITs, a second aborts).\n"
"Exit status: 0 no error, 1 some session failed (or a runtime failure),\n"
"2 bad usage.\n");
}

static void __attribute__((format(printf, 2, 3), noreturn))
usage_error(const char *opt, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "loadgen: Error: %s: ", opt);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(loadgen --help for usage)\n");
	exit(2);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* A runtime failure (not usage): text on stderr, and as JSON on stdout in -j. */
static int __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "loadgen: Error: %s\n", msg);
	if (g.json) {
		fputs("{\"error\":", stdout);
		json_str(stdout, msg);
		fputs("}\n", stdout);
	}
	return 1;
}

/* The start of the current reply line, printable, without its CRLF. */
static const char *show_line(struct conn *c, char *out, size_t outlen)
{
	size_t n = c->llen < HEAD_LEN ? c->llen : HEAD_LEN, i, o = 0;

	while (n && (c->head[n - 1] == '\n' || c->head[n - 1] == '\r'))
		n--;
	for (i = 0; i < n && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)c->head[i];

		out[o++] = (ch < 0x20 || ch > 0x7e) ? '?' : (char)ch;
	}
	out[o] = 0;
	if (c->llen > HEAD_LEN && o + 4 < outlen)
		strcpy(out + o, "...");
	return out;
}

/* xorshift64*: one step of the stream in *state. */
static uint64_t xorshift64s(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_next(struct worker *w)
{
	return xorshift64s(&w->rng);
}

/* mixed's choices: their own stream, from --seed and the thread. */
static uint64_t mix_next(struct worker *w)
{
	return xorshift64s(&w->mix_rng) >> 11;
}

/* Keep every latency up to latmax, then a uniform sample (reservoir). */
static void lat_add(struct worker *w, uint64_t ns)
{
	uint64_t us64 = ns / 1000;
	uint32_t us = us64 > UINT32_MAX ? UINT32_MAX : (uint32_t)us64;

	w->nseen++;
	w->lat_sum += us;
	if (us < w->lat_min)
		w->lat_min = us;
	if (us > w->lat_max)
		w->lat_max = us;
	if (w->nlat < w->latmax) {
		if (w->nlat == w->latcap) {
			size_t cap = w->latcap ? w->latcap * 2 : 4096;
			uint32_t *p;

			if (cap > w->latmax)
				cap = w->latmax;
			p = realloc(w->lat, cap * sizeof(*p));
			if (!p) {
				w->latmax = w->nlat;	/* sample from here on */
				goto sample;
			}
			w->lat = p;
			w->latcap = cap;
		}
		w->lat[w->nlat++] = us;
		return;
	}
sample:
	if (w->nlat) {
		uint64_t r = rng_next(w) % w->nseen;

		if (r < w->nlat)
			w->lat[r] = us;
	}
}

/* ---- sessions ---- */

static void conn_end(struct worker *w, struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);	/* also leaves the epoll set */
	c->fd = -1;
	if (c->opening) {
		c->opening = false;
		w->opening--;
	}
	c->phase = P_FREE;
	w->active--;
	w->freel[w->nfree++] = (int)(c - w->conns);
}

static void sess_ok(struct worker *w, struct conn *c, uint64_t now)
{
	w->kind_ok[c->kind]++;
	if (g.shape == SH_IDLE) {
		w->held++;
	} else if (c->counted) {
		w->ok++;
		w->last_ok = now;
		lat_add(w, now - c->t_start);
	} else {
		w->warm_ok++;
	}
	conn_end(w, c);
}

static int __attribute__((format(printf, 4, 5)))
sess_err(struct worker *w, struct conn *c, enum ekind kind, const char *fmt, ...)
{
	int i = atomic_load(&ndetails) < MAX_DETAILS ?
		atomic_fetch_add(&ndetails, 1) : MAX_DETAILS;

	w->err[kind]++;
	w->kind_err[c->kind]++;
	atomic_fetch_add(&nerrors, 1);
	if (kind == E_CONNECT)
		w->connfail++;
	if (i < MAX_DETAILS) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char port[32] = "";
		int n;
		va_list ap;

		if (c->fd >= 0 && !getsockname(c->fd, (struct sockaddr *)&ss, &sl)) {
			unsigned p = ss.ss_family == AF_INET6 ?
				ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
				ntohs(((struct sockaddr_in *)&ss)->sin_port);
			if (p)
				snprintf(port, sizeof(port), ", local port %u", p);
		}
		n = snprintf(details[i], sizeof(details[i]),
			     "%s: session %" PRIu64 " (thread %d%s, %.3f ms in): ",
			     ekind_name[kind], c->id, w->idx, port,
			     (double)(now_ns() - c->t_start) / 1e6);
		if (n > 0 && (size_t)n < sizeof(details[i])) {
			va_start(ap, fmt);
			vsnprintf(details[i] + n, sizeof(details[i]) - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	conn_end(w, c);
	return -1;
}

static bool end_code_ok(int code)
{
	return code == 221 || code == 421 || code / 100 == 5;
}

/* --expect-any: the server may end a session by closing after a 5xx or 421
 * (rblsmtpd, postscreen); with nothing partial pending, that is an end. */
static bool closed_after_5xx(const struct conn *c)
{
	return g.expect_any && c->ridx > 0 && !c->llen && c->mcode < 0 &&
	       c->last_code != 221 && end_code_ok(c->last_code);
}

static int noread_end(struct worker *w, struct conn *c, bool server_closed);

static int flush(struct worker *w, struct conn *c)
{
	while (c->wleft) {
		ssize_t n = send(c->fd, c->wptr, c->wleft, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->wptr += n;
			c->wleft -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;	/* EPOLLOUT (edge-triggered) resumes */
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET) &&
		    c->phase == P_NOREAD)
			return noread_end(w, c, true);	/* the server closed */
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET) &&
		    closed_after_5xx(c)) {
			sess_ok(w, c, now_ns());
			return -1;
		}
		return sess_err(w, c, E_RESET, "write before the reply to %s: %s",
				c->sc->what[c->ridx], n < 0 ? strerror(errno) : "wrote 0");
	}
	if (c->kind == SH_HALF_CLOSE && c->ridx >= 1 && !c->shut) {
		/* QUIT is out: our FIN follows it; the 221 must still come. */
		c->shut = true;
		if (shutdown(c->fd, SHUT_WR))
			return sess_err(w, c, E_RESET, "shutdown(SHUT_WR) after QUIT: %s",
					strerror(errno));
	}
	if (c->phase == P_NOREAD && !c->hold_end && g.noread_hold > 0)
		c->hold_end = now_ns() + (uint64_t)(g.noread_hold * NSEC);
	return 0;
}

static int reply_done(struct worker *w, struct conn *c, int code, uint64_t now)
{
	char l[HEAD_LEN + 8];
	int r;

	if (c->lenient) {
		/* noread, reading what came once it ended: the greeting, then
		 * replies to NOOP, maybe a 421 last. */
		int want = cmds[c->ridx ? C_NOOP : C_GREET].code[g.dialect];

		if (c->last_code == 421)
			return sess_err(w, c, E_WRONG_CODE, "reply after the 421: \"%s\"",
					show_line(c, l, sizeof(l)));
		if (!g.expect_any && code != want && !(c->ridx && code == 421))
			return sess_err(w, c, E_WRONG_CODE, "expected %d to %s (or 421), "
					"got \"%s\"", want, c->ridx ? "NOOP" : "the greeting",
					show_line(c, l, sizeof(l)));
		c->last_code = (int16_t)code;
		c->ridx = 1;
		return 0;
	}
	if (c->phase == P_HOLD)
		return sess_err(w, c, E_WRONG_CODE, "unsolicited reply while idle: \"%s\"",
				show_line(c, l, sizeof(l)));
	if (c->phase == P_CLOSING)
		return sess_err(w, c, E_WRONG_CODE, "reply after the last one (%d): \"%s\"",
				c->last_code, show_line(c, l, sizeof(l)));
	if (!g.expect_any && code != c->sc->code[c->ridx])
		return sess_err(w, c, E_WRONG_CODE, "expected %d to %s, got \"%s\"",
				c->sc->code[c->ridx], c->sc->what[c->ridx],
				show_line(c, l, sizeof(l)));
	c->last_code = (int16_t)code;
	r = c->ridx++;
	if (g.shape == SH_IDLE && r == 0) {
		c->opening = false;
		w->opening--;
		lat_add(w, now - c->t_start);
		if (w->idle_state == IDLE_OPEN) {
			c->phase = P_HOLD;
			c->deadline = UINT64_MAX;
			return 0;
		}
		/* Greeted after the hold ended (interrupted): QUIT at once. */
		c->deadline = now + g.timeout_ns;
		c->wptr = cmds[C_QUIT].line;
		c->wleft = strlen(cmds[C_QUIT].line);
		return flush(w, c);
	}
	/* --expect-any: after 421 the server closes (RFC 5321 3.8); send
	 * nothing more, wait for the close. */
	if (c->ridx == c->sc->n || (g.expect_any && code == 421)) {
		if (g.expect_any && !end_code_ok(code) && c->kind != SH_RESET)
			return sess_err(w, c, E_WRONG_CODE, "last reply (to %s) is \"%s\", "
					"not 221", c->sc->what[r], show_line(c, l, sizeof(l)));
		if (c->kind == SH_QUIT_CLOSE && code == 221) {
			/* The way Postfix, Exim and smtplib end: close at
			 * once, without waiting for the server's close. */
			sess_ok(w, c, now);
			return -1;
		}
		if (c->kind == SH_RESET && c->ridx == c->sc->n) {
			/* Mid-dialogue: RST instead of QUIT. */
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			sess_ok(w, c, now);
			return -1;
		}
		c->phase = P_CLOSING;
		return 0;
	}
	if (c->sc->send[r]) {
		c->wptr = c->sc->send[r];
		c->wleft = c->sc->sendlen[r];
		return flush(w, c);
	}
	return 0;
}

/* A line ended (LF seen): check it is a reply line, complete a reply on its
 * last line. Returns -1 when the session ended. */
static int line_done(struct worker *w, struct conn *c, uint64_t now)
{
	const char *h = c->head;
	char l[HEAD_LEN + 8];
	int code;

	if (!c->prev_cr)
		return sess_err(w, c, E_MALFORMED, "line ends in a bare LF: \"%s\"",
				show_line(c, l, sizeof(l)));
	if (c->llen < 5 || h[0] < '2' || h[0] > '5' || h[1] < '0' || h[1] > '9' ||
	    h[2] < '0' || h[2] > '9' ||
	    (h[3] != ' ' && h[3] != '-' && !(h[3] == '\r' && c->llen == 5)))
		return sess_err(w, c, E_MALFORMED, "not an SMTP reply line: \"%s\"",
				show_line(c, l, sizeof(l)));
	code = (h[0] - '0') * 100 + (h[1] - '0') * 10 + (h[2] - '0');
	if (c->mcode >= 0 && code != c->mcode)
		return sess_err(w, c, E_MALFORMED, "multi-line reply %d goes on with "
				"\"%s\"", c->mcode, show_line(c, l, sizeof(l)));
	if (h[3] == '-') {
		c->mcode = (int16_t)code;
		return 0;
	}
	c->mcode = -1;
	return reply_done(w, c, code, now);
}

static int parse(struct worker *w, struct conn *c, const char *p, size_t n,
		 uint64_t now)
{
	char l[HEAD_LEN + 8];
	size_t i;

	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (c->llen < HEAD_LEN)
			c->head[c->llen] = ch;
		c->llen++;
		if (ch == '\n') {
			if (line_done(w, c, now) < 0)
				return -1;
			c->llen = 0;
			c->prev_cr = false;
			continue;
		}
		if (c->llen >= REPLY_LINE_MAX)
			return sess_err(w, c, E_MALFORMED, "reply line over %d octets: "
					"\"%s\"", REPLY_LINE_MAX, show_line(c, l, sizeof(l)));
		c->prev_cr = ch == '\r';
	}
	return 0;
}

static void on_eof(struct worker *w, struct conn *c, uint64_t now)
{
	char l[HEAD_LEN + 8];

	if (c->phase == P_CLOSING && c->llen == 0) {
		sess_ok(w, c, now);
		return;
	}
	if (c->phase == P_ACTIVE && closed_after_5xx(c)) {
		sess_ok(w, c, now);	/* closed after a 5xx or 421 */
		return;
	}
	if (c->phase == P_HOLD) {
		sess_err(w, c, E_EARLY_CLOSE, "server closed an idle session");
		return;
	}
	if (c->llen)
		sess_err(w, c, E_EARLY_CLOSE, "server closed in the middle of a line: "
			 "\"%s\"", show_line(c, l, sizeof(l)));
	else
		sess_err(w, c, E_EARLY_CLOSE, "server closed before the reply to %s",
			 c->sc->what[c->ridx]);
}

static void do_read(struct worker *w, struct conn *c, uint32_t ev, uint64_t now)
{
	for (;;) {
		ssize_t n = recv(c->fd, w->buf, sizeof(w->buf), 0);

		if (n > 0) {
			if (parse(w, c, w->buf, (size_t)n, now) < 0)
				return;
			/* A short read drained the socket: edge-triggered epoll
			 * reports what arrives later, unless the FIN is already
			 * here (RDHUP), which no new edge announces. */
			if ((size_t)n < sizeof(w->buf) &&
			    !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				return;
			continue;
		}
		if (n == 0) {
			on_eof(w, c, now);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return;
		/* --expect-any: a server that closed after a 5xx resets the
		 * connection when our next command reaches it. */
		if ((errno == ECONNRESET || errno == EPIPE) && closed_after_5xx(c)) {
			sess_ok(w, c, now);
			return;
		}
		if (c->phase == P_CLOSING)
			sess_err(w, c, E_RESET, "after the last reply (%d): %s",
				 c->last_code, strerror(errno));
		else if (c->phase == P_HOLD)
			sess_err(w, c, E_RESET, "while idle: %s", strerror(errno));
		else
			sess_err(w, c, E_RESET, "waiting for the reply to %s: %s",
				 c->sc->what[c->ridx], strerror(errno));
		return;
	}
}

/* noread ends: the server closed (FIN or RST), or the hold is up (the client
 * closes). Whatever came is read now and checked; then the session is done. */
static int noread_end(struct worker *w, struct conn *c, bool server_closed)
{
	char l[HEAD_LEN + 8];
	bool reset = false, eof = false;
	uint64_t now = now_ns();

	c->lenient = true;
	for (;;) {
		ssize_t n = recv(c->fd, w->buf, sizeof(w->buf), MSG_DONTWAIT);

		if (n > 0) {
			c->rx += (uint64_t)n;
			if (parse(w, c, w->buf, (size_t)n, now) < 0)
				return -1;
			continue;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && !server_closed)
			break;
		if (errno == EAGAIN) {	/* RDHUP with data still coming: wait a bit */
			struct timespec ts = { 0, 1000000 };

			if (now_ns() > c->deadline)
				return sess_err(w, c, E_NO_CLOSE, "non-reading session: the "
						"server's close did not complete within %g s",
						g.timeout);
			nanosleep(&ts, NULL);
			continue;
		}
		reset = true;	/* ECONNRESET: what the RST cut is lost */
		break;
	}
	if (eof && c->llen)
		return sess_err(w, c, E_EARLY_CLOSE, "non-reading session: the server "
				"closed in the middle of a line: \"%s\"",
				show_line(c, l, sizeof(l)));
	if (server_closed || eof || reset)
		w->nr_server_closed++;
	else
		w->nr_client_closed++;
	w->nr_rx += c->rx;
	if (c->last_code == 421)
		w->nr_421++;
	sess_ok(w, c, now);
	return -1;
}

static void on_event(struct worker *w, struct conn *c, uint32_t ev, uint64_t now)
{
	if (c->phase == P_FREE)
		return;
	if (c->phase == P_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el))
			err = errno;
		if (err == ECONNRESET || err == EPIPE) {
			/* Connected, then reset before we saw it connect. */
			sess_err(w, c, E_RESET, "right after connecting: %s", strerror(err));
			return;
		}
		if (err) {
			if (err == EADDRNOTAVAIL)
				w->addrnotavail = true;
			sess_err(w, c, E_CONNECT, "%s", strerror(err));
			return;
		}
		c->phase = P_ACTIVE;
		w->connfail = 0;
		if (c->kind == SH_NOREAD) {
			c->phase = P_NOREAD;
			c->wptr = noread_buf;
			c->wleft = noread_len;
		}
	}
	if (c->phase == P_NOREAD) {
		if (c->wleft && (ev & EPOLLOUT) && flush(w, c) < 0)
			return;
		if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			noread_end(w, c, true);
		return;	/* never read before the end */
	}
	if (c->wleft && (ev & EPOLLOUT) && flush(w, c) < 0)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		do_read(w, c, ev, now);
}

/* Start a session in slot c. Returns -1 if it failed at once. */
static int sess_start(struct worker *w, struct conn *c, bool counted, uint64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	int fd;

	memset(c, 0, offsetof(struct conn, head));
	c->fd = -1;
	c->phase = P_CONNECTING;
	c->counted = counted;
	c->mcode = -1;
	c->last_code = -1;
	c->t_start = now_ns();	/* its own clock, not the batch's "now" */
	c->deadline = now + g.timeout_ns;
	c->id = w->seq++;	/* per thread; messages name the thread too */
	c->kind = (uint8_t)g.shape;
	if (g.shape == SH_MIXED) {
		uint64_t r = mix_next(w) % MIX_TOTAL;
		size_t k;

		for (k = 0; r >= mix[k].weight; k++)
			r -= mix[k].weight;
		c->kind = (uint8_t)mix[k].shape;
	}
	c->sc = &g.sc[c->kind];
	w->active++;
	if (g.shape == SH_IDLE) {
		c->opening = true;
		w->opening++;
	}

	fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			w->emfile = true;
		return sess_err(w, c, E_CONNECT, "socket: %s", strerror(errno));
	}
	c->fd = fd;
	/* No TCP_NODELAY: every write follows a reply, which acknowledges all
	 * we sent, so Nagle never holds a segment back. */
	if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) && errno != EINPROGRESS) {
		if (errno == EADDRNOTAVAIL || errno == EAGAIN)
			w->addrnotavail = true;
		return sess_err(w, c, E_CONNECT, "%s", strerror(errno));
	}
	ev.data.ptr = c;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev))
		return sess_err(w, c, E_CONNECT, "epoll_ctl: %s", strerror(errno));
	return 0;
}

static void scan_timeouts(struct worker *w, uint64_t now)
{
	double t = g.timeout;
	int i;

	for (i = 0; i < w->conc; i++) {
		struct conn *c = &w->conns[i];

		if (c->phase == P_NOREAD && c->hold_end && now >= c->hold_end) {
			noread_end(w, c, false);
			continue;
		}
		if (c->phase == P_FREE || now < c->deadline)
			continue;
		switch (c->phase) {
		case P_NOREAD:
			sess_err(w, c, E_NO_CLOSE, "non-reading session: sent %zu of %zu "
				 "octets, no close by the server within %g s",
				 noread_len - c->wleft, noread_len, t);
			break;
		case P_CONNECTING:
			sess_err(w, c, E_CONNECT, "not connected within %g s", t);
			break;
		case P_CLOSING:
			sess_err(w, c, E_NO_CLOSE, "%d to %s, then no close within %g s",
				 c->last_code, c->sc->what[c->ridx - 1], t);
			break;
		default:
			sess_err(w, c, E_TIMEOUT, "no reply to %s within %g s%s",
				 c->sc->what[c->ridx], t,
				 c->llen ? " (a partial line came)" : "");
			break;
		}
	}
}

static void abort_all(struct worker *w)
{
	int i;

	for (i = 0; i < w->conc; i++) {
		if (w->conns[i].phase != P_FREE) {
			w->aborted++;
			conn_end(w, &w->conns[i]);
		}
	}
}

/* May a new session start now; *counted: does it count. */
static bool may_start(struct worker *w, uint64_t now, bool *counted)
{
	if (atomic_load(&stop_flag))
		return false;
	if (now < g.warm_end) {
		*counted = false;
		return true;
	}
	*counted = true;
	if (g.duration > 0)
		return now < g.end_time;
	return w->started_counted < w->quota;
}

/* Fill free slots. Returns true to pause the loop a millisecond: a start
 * failed at once, or connects keep failing (refused, no local port), when
 * one try per millisecond replaces a storm of them until one connects. */
static bool refill(struct worker *w, uint64_t now)
{
	bool counted, failing = w->connfail >= CONNFAIL_BURST;

	if (failing && now < w->next_try)
		return true;
	while (w->nfree && may_start(w, now, &counted)) {
		struct conn *c = &w->conns[w->freel[--w->nfree]];

		if (counted)
			w->started_counted++;
		if (sess_start(w, c, counted, now) < 0)
			return true;
		if (failing) {
			w->next_try = now + 1000000;
			return true;
		}
	}
	return false;
}

/* The idle shape, one step. Returns true when done. */
static bool idle_step(struct worker *w, uint64_t now, int stop)
{
	int i;

	switch (w->idle_state) {
	case IDLE_OPEN:
		while (!stop && w->opened < w->conc && w->opening < IDLE_RAMP &&
		       w->nfree) {
			struct conn *c = &w->conns[w->freel[--w->nfree]];

			w->opened++;
			sess_start(w, c, true, now);
		}
		if (!stop && (w->opened < w->conc || w->opening))
			return false;
		w->hold_start = now;
		w->hold_end = now + (uint64_t)(g.duration * NSEC);
		w->idle_state = IDLE_HOLD;
		/* fall through */
	case IDLE_HOLD:
		/* Hold until -d is up, unless nothing is left to hold. */
		if (!stop && now < w->hold_end && w->active)
			return false;
		w->hold_end = now;
		for (i = 0; i < w->conc; i++) {
			struct conn *c = &w->conns[i];

			if (c->phase != P_HOLD)
				continue;
			c->phase = P_ACTIVE;
			c->deadline = now + g.timeout_ns;
			c->wptr = cmds[C_QUIT].line;
			c->wleft = strlen(cmds[C_QUIT].line);
			flush(w, c);
		}
		w->idle_state = IDLE_QUIT;
		/* fall through */
	case IDLE_QUIT:
		if (w->active)
			return false;
		w->idle_state = IDLE_DONE;
		/* fall through */
	default:
		return true;
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[512];
	uint64_t next_scan = 0;

	for (;;) {
		uint64_t now = now_ns();
		int stop = atomic_load(&stop_flag), n, i;
		bool pause = false;

		/* A first signal ends the idle hold early (QUIT is still sent
		 * and checked); elsewhere, and on a second signal, stop now. */
		if (stop >= (g.shape == SH_IDLE ? 2 : 1) ||
		    (g.max_errors && atomic_load(&nerrors) >= g.max_errors)) {
			abort_all(w);
			break;
		}
		if (g.shape == SH_IDLE) {
			if (idle_step(w, now, stop))
				break;
		} else {
			bool counted;

			pause = refill(w, now);
			if (!w->active && !may_start(w, now, &counted))
				break;
		}
		if (now >= next_scan) {
			scan_timeouts(w, now);
			next_scan = now + SCAN_NS;
		}
		n = epoll_wait(w->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])),
			       pause ? 1 : 20);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait: %s", strerror(errno));
			abort_all(w);
			break;
		}
		for (i = 0; i < n; i++)
			on_event(w, evs[i].data.ptr, evs[i].events, now_ns());
	}
	return NULL;
}

/* ---- setup ---- */

static void build_script(enum shape shape)
{
	enum cmd seq[MAX_REPLIES];
	int k = 0, i, d = g.dialect;
	bool piped = shape == SH_PIPELINED || shape == SH_LONG;
	struct script *sc = &g.sc[shape];
	char *pbuf = pipeline_buf[shape];
	size_t off = 0;

	switch (shape) {
	case SH_GREET_QUIT:
	case SH_IDLE:
	case SH_QUIT_CLOSE:
	case SH_SERVER_CLOSE:
	case SH_HALF_CLOSE:
		seq[k++] = C_QUIT;
		break;
	case SH_RESET:
		seq[k++] = C_EHLO;	/* then RST, after its 250 */
		break;
	case SH_NOREAD:		/* no script: any NOOP reply, then 421 */
	case SH_MIXED:		/* each session uses its drawn shape's */
	case SH_COUNT:
		break;
	case SH_DIALOG:
	case SH_PIPELINED:
		seq[k++] = C_EHLO;
		seq[k++] = C_MAIL;
		seq[k++] = C_RCPT;
		seq[k++] = C_DATA;
		seq[k++] = C_QUIT;
		break;
	case SH_LONG:
		seq[k++] = C_EHLO;
		seq[k++] = C_MAIL;
		for (i = 0; i < 48; i++) {
			seq[k++] = C_RCPT;
			seq[k++] = C_NOOP;
		}
		seq[k++] = C_RSET;
		seq[k++] = C_QUIT;
		break;
	}
	memset(sc, 0, sizeof(*sc));
	sc->n = k + 1;
	sc->code[0] = cmds[C_GREET].code[d];
	sc->what[0] = cmds[C_GREET].name;
	for (i = 0; i < k; i++) {
		size_t len = strlen(cmds[seq[i]].line);

		sc->code[i + 1] = cmds[seq[i]].code[d];
		sc->what[i + 1] = cmds[seq[i]].name;
		if (piped) {
			memcpy(pbuf + off, cmds[seq[i]].line, len);
			off += len;
		} else if (shape != SH_IDLE) {	/* idle: QUIT after the hold */
			sc->send[i] = cmds[seq[i]].line;
			sc->sendlen[i] = len;
		}
	}
	if (piped) {
		sc->send[0] = pbuf;
		sc->sendlen[0] = off;
	}
}

static int build_scripts(void)
{
	uint64_t i;
	int s;

	for (s = 0; s < SH_COUNT; s++)
		build_script((enum shape)s);
	if (g.shape != SH_NOREAD && g.shape != SH_MIXED)
		return 0;
	noread_len = g.noread_lines * 6;
	noread_buf = malloc(noread_len);
	if (!noread_buf)
		return fail("out of memory for --noread-lines %" PRIu64, g.noread_lines);
	for (i = 0; i < g.noread_lines; i++)
		memcpy(noread_buf + i * 6, "NOOP\r\n", 6);
	return 0;
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-' || *s == '+')
		usage_error(opt, "'%s' is not a whole number from %" PRIu64 " to %" PRIu64,
			    s, min, max);
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage_error(opt, "'%s' is not a whole number from %" PRIu64 " to %" PRIu64,
			    s, min, max);
	return v;
}

static double parse_secs(const char *opt, const char *s, double min, double max,
			 bool min_open)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v != v || v < min || v > max ||
	    (min_open && v == min))
		usage_error(opt, "'%s' is not a number of seconds %s %g and at most %g",
			    s, min_open ? "over" : "from", min, max);
	return v;
}

static void parse_target(const char *s)
{
	char host[256], port[16];
	const char *colon, *p;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	size_t hl;
	int rc;

	if (s[0] == '[') {
		p = strchr(s, ']');
		if (!p || p[1] != ':')
			usage_error("HOST:PORT", "'%s': an IPv6 target is [ADDR]:PORT", s);
		hl = (size_t)(p - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			usage_error("HOST:PORT", "'%s': bad address", s);
		memcpy(host, s + 1, hl);
		colon = p + 1;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			usage_error("HOST:PORT", "'%s' has no :PORT", s);
		if (strchr(s, ':') != colon)
			usage_error("HOST:PORT", "'%s': put an IPv6 address in brackets, "
				    "e.g. [::1]:2525", s);
		hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(host))
			usage_error("HOST:PORT", "'%s': bad host", s);
		memcpy(host, s, hl);
	}
	host[hl] = 0;
	snprintf(port, sizeof(port), "%" PRIu64, parse_num("HOST:PORT (port)", colon + 1, 1, 65535));
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		usage_error("HOST:PORT", "'%s': %s", host, gai_strerror(rc));
	memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
	g.addrlen = res->ai_addrlen;
	freeaddrinfo(res);

	if (g.addr.ss_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&g.addr)->sin6_addr, a, sizeof(a));
		snprintf(g.target, sizeof(g.target), "[%s]:%s", a, port);
	} else {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &((struct sockaddr_in *)&g.addr)->sin_addr, a, sizeof(a));
		snprintf(g.target, sizeof(g.target), "%s:%s", a, port);
	}
}

/* Loopback, unspecified (which Linux connects to loopback), or an address of
 * one of this network namespace's interfaces. */
static int target_is_local(void)
{
	struct in_addr v4;
	struct in6_addr v6;
	bool is4 = g.addr.ss_family == AF_INET;
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (is4) {
		v4 = ((struct sockaddr_in *)&g.addr)->sin_addr;
	} else {
		v6 = ((struct sockaddr_in6 *)&g.addr)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&v6)) {
			memcpy(&v4, &v6.s6_addr[12], 4);
			is4 = true;
		}
	}
	if (is4 && ((ntohl(v4.s_addr) >> 24) == 127 || v4.s_addr == htonl(INADDR_ANY)))
		return 1;
	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (is4 && i->ifa_addr->sa_family == AF_INET)
			found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == v4.s_addr;
		else if (!is4 && i->ifa_addr->sa_family == AF_INET6)
			found = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
					&v6, sizeof(v6));
	}
	freeifaddrs(ifa);
	return found;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, permille: 500, 990, 999. */
static uint32_t pct(const uint32_t *v, size_t n, unsigned permille)
{
	size_t rank;

	if (!n)
		return 0;
	rank = (n * permille + 999) / 1000;
	return v[rank ? rank - 1 : 0];
}

/* The option getopt_long just rejected, as the user wrote it. */
static const char *opt_name(char **argv)
{
	static char short_opt[3] = "-?";

	if (optopt > 0 && optopt < 128) {
		short_opt[1] = (char)optopt;
		return short_opt;
	}
	return argv[optind - 1];
}

enum { OPT_DIALECT = 256, OPT_EXPECT_ANY, OPT_ALLOW_REMOTE, OPT_SEED, OPT_NR_LINES,
       OPT_NR_HOLD, OPT_MAX_ERRORS };

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "shape", required_argument, NULL, 's' },
		{ "conc", required_argument, NULL, 'c' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'T' },
		{ "dialect", required_argument, NULL, OPT_DIALECT },
		{ "expect-any", no_argument, NULL, OPT_EXPECT_ANY },
		{ "allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "max-errors", required_argument, NULL, OPT_MAX_ERRORS },
		{ "noread-lines", required_argument, NULL, OPT_NR_LINES },
		{ "noread-hold", required_argument, NULL, OPT_NR_HOLD },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool have_n = false;
	int opt, i;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:c:n:d:w:t:T:qjh", lopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			for (i = 0; i < SH_COUNT; i++)
				if (!strcmp(optarg, shape_name[i]))
					break;
			if (i == SH_COUNT)
				usage_error("-s", "unknown shape '%s' (greet-quit, dialog, "
					    "pipelined, long, idle, quit-close, server-close, "
					    "reset, half-close, noread, mixed)", optarg);
			g.shape = (enum shape)i;
			break;
		case 'c':
			g.conc = (int)parse_num("-c", optarg, 1, 1000000);
			break;
		case 'n':
			g.total = parse_num("-n", optarg, 1, 1000000000000ULL);
			have_n = true;
			break;
		case 'd':
			g.duration = parse_secs("-d", optarg, 0, 86400, true);
			break;
		case 'w':
			g.warmup = parse_secs("-w", optarg, 0, 3600, false);
			break;
		case 't':
			g.timeout = parse_secs("-t", optarg, 0, 3600, true);
			break;
		case 'T':
			g.threads = (int)parse_num("-T", optarg, 1, MAX_THREADS);
			break;
		case OPT_DIALECT:
			if (!strcmp(optarg, "rcpt"))
				g.dialect = D_RCPT;
			else if (!strcmp(optarg, "rfc7504"))
				g.dialect = D_RFC7504;
			else
				usage_error("--dialect", "'%s' is neither rcpt nor rfc7504",
					    optarg);
			break;
		case OPT_EXPECT_ANY:
			g.expect_any = true;
			break;
		case OPT_ALLOW_REMOTE:
			g.allow_remote = true;
			break;
		case OPT_MAX_ERRORS:
			g.max_errors = parse_num("--max-errors", optarg, 0, UINT64_MAX);
			break;
		case OPT_SEED:
			g.seed = parse_num("--seed", optarg, 0, UINT64_MAX);
			break;
		case OPT_NR_LINES:
			g.noread_lines = parse_num("--noread-lines", optarg, 1, 100000000);
			break;
		case OPT_NR_HOLD:
			g.noread_hold = parse_secs("--noread-hold", optarg, 0, 3600, false);
			break;
		case 'q':
			g.quiet = true;
			break;
		case 'j':
			g.json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error(opt_name(argv), "needs a value");
		default:
			usage_error(opt_name(argv), "unknown option");
		}
	}
	if (optind >= argc)
		usage_error("HOST:PORT", "missing target");
	if (optind < argc - 1)
		usage_error("HOST:PORT", "one target only, got '%s' after '%s'",
			    argv[optind + 1], argv[optind]);
	g.target_arg = argv[optind];
	if (have_n && g.duration > 0)
		usage_error("-n", "use -n or -d, not both");
	if (g.shape == SH_IDLE) {
		if (have_n)
			usage_error("-n", "does not apply to -s idle (it holds -c sessions "
				    "for -d seconds)");
		if (g.warmup > 0)
			usage_error("-w", "does not apply to -s idle");
		if (g.duration == 0)
			g.duration = 5;
	} else if (!have_n && g.duration == 0) {
		g.total = 10000;
	}
	if (g.threads > g.conc)
		usage_error("-T", "%d threads for %d sessions in flight: each thread "
			    "needs at least one", g.threads, g.conc);
	parse_target(g.target_arg);
}

/* Soft RLIMIT_NOFILE up to the hard one; then -c must fit. */
static void check_nofile(void)
{
	struct rlimit rl;
	uint64_t need = (uint64_t)g.conc + (uint64_t)g.threads + FD_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t cur = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			rl.rlim_cur = cur;
	}
	if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
		usage_error("-c", "%d sessions in flight need about %" PRIu64
			    " descriptors, but RLIMIT_NOFILE allows %llu (its hard limit);"
			    " lower -c or raise the hard limit (ulimit -Hn, LimitNOFILE=)",
			    g.conc, need, (unsigned long long)rl.rlim_cur);
}

/* ---- output ---- */

struct totals {
	uint64_t ok, warm_ok, aborted, err[E_MAX], errors, held, nseen, lat_sum;
	uint64_t kind_ok[SH_COUNT], kind_err[SH_COUNT];
	uint64_t nr_server_closed, nr_client_closed, nr_rx, nr_421;
	uint32_t lat_min, lat_max, p50, p99, p999;
	double secs, rate;
	bool addrnotavail, emfile, interrupted, stopped_on_errors;
};

static void report(const struct totals *t)
{
	int nd = atomic_load(&ndetails), i, e;
	const char *latwhat = g.shape == SH_IDLE ? "connect to greeting" :
		"whole session, connect to server close";
	double mean = t->nseen ? (double)t->lat_sum / (double)t->nseen : 0;

	if (nd > MAX_DETAILS)
		nd = MAX_DETAILS;
	if (t->addrnotavail)
		fprintf(stderr, "loadgen: hint: connect failed with EADDRNOTAVAIL: the "
			"local ports are used up; widen net.ipv4.ip_local_port_range or "
			"lower -c / the rate\n");
	if (t->emfile)
		fprintf(stderr, "loadgen: hint: out of descriptors (EMFILE/ENFILE)\n");

	if (g.json) {
		printf("{\"shape\":\"%s\",\"target\":", shape_name[g.shape]);
		json_str(stdout, g.target);
		printf(",\"dialect\":\"%s\",\"expect_any\":%s,\"conc\":%d,\"threads\":%d,",
		       g.expect_any ? "any" : g.dialect == D_RCPT ? "rcpt" : "rfc7504",
		       g.expect_any ? "true" : "false", g.conc, g.threads);
		if (g.shape == SH_IDLE)
			printf("\"held\":%" PRIu64 ",\"hold_secs\":%.3f,", t->held, t->secs);
		else
			printf("\"sessions\":%" PRIu64 ",\"secs\":%.3f,\"rate\":%.1f,"
			       "\"warmup_sessions\":%" PRIu64 ",", t->ok, t->secs, t->rate,
			       t->warm_ok);
		printf("\"errors\":%" PRIu64 ",\"errors_by_kind\":{", t->errors);
		for (e = 0; e < E_MAX; e++)
			printf("%s\"%s\":%" PRIu64, e ? "," : "", ekind_name[e], t->err[e]);
		printf("},\"latency_us\":{\"of\":\"%s\",\"samples\":%" PRIu64 ",\"p50\":%u,"
		       "\"p99\":%u,\"p999\":%u,\"min\":%u,\"mean\":%.0f,\"max\":%u},",
		       g.shape == SH_IDLE ? "greeting" : "session", t->nseen, t->p50,
		       t->p99, t->p999, t->nseen ? t->lat_min : 0, mean, t->lat_max);
		printf("\"by_shape\":{");
		for (e = 0, i = 0; e < SH_COUNT; e++) {
			if (!t->kind_ok[e] && !t->kind_err[e])
				continue;
			printf("%s\"%s\":{\"ok\":%" PRIu64 ",\"errors\":%" PRIu64 "}",
			       i++ ? "," : "", shape_name[e], t->kind_ok[e], t->kind_err[e]);
		}
		printf("},");
		if (g.shape == SH_NOREAD || g.shape == SH_MIXED)
			printf("\"noread\":{\"lines\":%" PRIu64 ",\"hold_secs\":%g,"
			       "\"server_closed\":%" PRIu64 ",\"client_closed\":%" PRIu64
			       ",\"rx_bytes\":%" PRIu64 ",\"ended_421\":%" PRIu64 "},",
			       g.noread_lines, g.noread_hold, t->nr_server_closed,
			       t->nr_client_closed, t->nr_rx, t->nr_421);
		printf("\"aborted\":%" PRIu64 ",\"interrupted\":%s,\"stopped_on_errors\":%s,"
		       "\"first_errors\":[", t->aborted, t->interrupted ? "true" : "false",
		       t->stopped_on_errors ? "true" : "false");
		for (i = 0; i < nd; i++) {
			if (i)
				putchar(',');
			json_str(stdout, details[i]);
		}
		printf("]}\n");
		return;
	}

	if (!g.quiet) {
		for (i = 0; i < nd; i++)
			fprintf(stderr, "loadgen: error: %s\n", details[i]);
		if (t->errors > (uint64_t)nd && nd)
			fprintf(stderr, "loadgen: (%" PRIu64 " more errors not shown)\n",
				t->errors - (uint64_t)nd);
		printf("target    %s, shape %s, dialect %s, %d in flight, %d thread%s\n",
		       g.target, shape_name[g.shape], g.expect_any ? "any (--expect-any)" :
		       g.dialect == D_RCPT ? "rcpt" : "rfc7504", g.conc, g.threads,
		       g.threads > 1 ? "s" : "");
		if (t->interrupted)
			printf("          interrupted: %" PRIu64 " sessions in flight aborted "
			       "(not counted as errors)\n", t->aborted);
		if (t->stopped_on_errors)
			printf("          stopped after %" PRIu64 " errors (--max-errors): %"
			       PRIu64 " sessions in flight aborted\n", t->errors, t->aborted);
		if (g.shape == SH_IDLE)
			printf("held      %" PRIu64 " of %d sessions for %.3f s, then QUIT, "
			       "221 and close\n", t->held, g.conc, t->secs);
		else
			printf("sessions  %" PRIu64 " in %.3f s = %.1f sessions/s "
			       "(%" PRIu64 " warm-up sessions not counted)\n",
			       t->ok, t->secs, t->rate, t->warm_ok);
		printf("errors    %" PRIu64 ":", t->errors);
		for (e = 0; e < E_MAX; e++)
			printf(" %s %" PRIu64, ekind_name[e], t->err[e]);
		printf("\nlatency   %s, us: p50 %u  p99 %u  p99.9 %u  (min %u, mean %.0f, "
		       "max %u, %" PRIu64 " sessions)\n", latwhat, t->p50, t->p99, t->p999,
		       t->nseen ? t->lat_min : 0, mean, t->lat_max, t->nseen);
		if (g.shape == SH_MIXED) {
			printf("by shape ");
			for (e = 0; e < SH_COUNT; e++)
				if (t->kind_ok[e] || t->kind_err[e])
					printf(" %s %" PRIu64 " ok %" PRIu64 " failed;",
					       shape_name[e], t->kind_ok[e], t->kind_err[e]);
			printf("\n");
		}
		if (g.shape == SH_NOREAD || g.shape == SH_MIXED)
			printf("noread    %" PRIu64 " lines each: %" PRIu64 " closed by the "
			       "server (%" PRIu64 " ending in 421), %" PRIu64 " by the client "
			       "after %g s; %" PRIu64 " octets received\n", g.noread_lines,
			       t->nr_server_closed, t->nr_421, t->nr_client_closed,
			       g.noread_hold, t->nr_rx);
	}
	if (g.shape == SH_IDLE)
		printf("RESULT shape=idle conc=%d held=%" PRIu64 " errors=%" PRIu64
		       " secs=%.3f p50_us=%u p99_us=%u p999_us=%u\n", g.conc, t->held,
		       t->errors, t->secs, t->p50, t->p99, t->p999);
	else
		printf("RESULT shape=%s conc=%d sessions=%" PRIu64 " secs=%.3f rate=%.1f "
		       "errors=%" PRIu64 " p50_us=%u p99_us=%u p999_us=%u\n",
		       shape_name[g.shape], g.conc, t->ok, t->secs, t->rate, t->errors,
		       t->p50, t->p99, t->p999);
}

int main(int argc, char **argv)
{
	struct worker *ws = NULL;
	struct totals t = { .lat_min = UINT32_MAX };
	struct sigaction sa = { .sa_handler = on_signal };
	uint32_t *all = NULL;
	size_t nall = 0, off = 0;
	uint64_t last_ok = 0, hold_min = UINT64_MAX;
	int i, j, rc = 1, lr;

	parse_args(argc, argv);
	lr = target_is_local();
	if (lr < 0)
		return fail("getifaddrs: %s", strerror(-lr));
	if (!lr && !g.allow_remote)
		usage_error("HOST:PORT", "%s is neither loopback nor an address of an "
			    "interface in this network namespace; loadgen loads only this "
			    "machine unless --allow-remote is given", g.target);
	check_nofile();
	if (build_scripts())
		return 1;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	ws = calloc((size_t)g.threads, sizeof(*ws));
	if (!ws)
		return fail("out of memory");
	g.timeout_ns = (uint64_t)(g.timeout * NSEC);
	for (i = 0; i < g.threads; i++) {
		struct worker *w = &ws[i];

		w->idx = i;
		w->conc = g.conc / g.threads + (i < g.conc % g.threads);
		w->quota = g.total / (uint64_t)g.threads + ((uint64_t)i < g.total % (uint64_t)g.threads);
		w->latmax = LAT_CAP / (size_t)g.threads;
		w->lat_min = UINT32_MAX;
		w->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
		w->mix_rng = (g.seed + 1) * 0xBF58476D1CE4E5B9ULL ^
			     0x94D049BB133111EBULL * (uint64_t)(i + 1);
		if (!w->mix_rng)
			w->mix_rng = 1;
		w->conns = calloc((size_t)w->conc, sizeof(*w->conns));
		w->freel = calloc((size_t)w->conc, sizeof(*w->freel));
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (!w->conns || !w->freel)
			return fail("out of memory for %d sessions", g.conc);
		if (w->ep < 0)
			return fail("epoll_create1: %s", strerror(errno));
		for (j = 0; j < w->conc; j++) {
			w->conns[j].fd = -1;
			w->freel[w->nfree++] = w->conc - 1 - j;
		}
	}

	if (!g.quiet && !g.json) {
		if (g.shape == SH_IDLE)
			fprintf(stderr, "loadgen: idle: opening %d sessions to %s, holding "
				"them %g s\n", g.conc, g.target, g.duration);
		else if (g.duration > 0)
			fprintf(stderr, "loadgen: %s to %s for %g s (+%g s warm-up), %d in "
				"flight\n", shape_name[g.shape], g.target, g.duration,
				g.warmup, g.conc);
		else
			fprintf(stderr, "loadgen: %s to %s: %" PRIu64 " sessions (+%g s "
				"warm-up), %d in flight\n", shape_name[g.shape], g.target,
				g.total, g.warmup, g.conc);
	}

	g.t0 = now_ns();
	g.warm_end = g.t0 + (uint64_t)(g.warmup * NSEC);
	g.end_time = g.warm_end + (uint64_t)(g.duration * NSEC);
	for (i = 1; i < g.threads; i++) {
		int e = pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);

		if (e) {
			atomic_store(&stop_flag, 2);
			for (j = 1; j < i; j++)
				pthread_join(ws[j].th, NULL);
			return fail("pthread_create: %s", strerror(e));
		}
	}
	worker_run(&ws[0]);
	for (i = 1; i < g.threads; i++)
		pthread_join(ws[i].th, NULL);

	for (i = 0; i < g.threads; i++) {
		struct worker *w = &ws[i];

		t.ok += w->ok;
		t.warm_ok += w->warm_ok;
		for (j = 0; j < SH_COUNT; j++) {
			t.kind_ok[j] += w->kind_ok[j];
			t.kind_err[j] += w->kind_err[j];
		}
		t.nr_server_closed += w->nr_server_closed;
		t.nr_client_closed += w->nr_client_closed;
		t.nr_rx += w->nr_rx;
		t.nr_421 += w->nr_421;
		t.aborted += w->aborted;
		t.held += w->held;
		for (j = 0; j < E_MAX; j++) {
			t.err[j] += w->err[j];
			t.errors += w->err[j];
		}
		t.nseen += w->nseen;
		t.lat_sum += w->lat_sum;
		if (w->nseen && w->lat_min < t.lat_min)
			t.lat_min = w->lat_min;
		if (w->lat_max > t.lat_max)
			t.lat_max = w->lat_max;
		if (w->last_ok > last_ok)
			last_ok = w->last_ok;
		if (w->hold_end - w->hold_start < hold_min)
			hold_min = w->hold_end - w->hold_start;
		t.addrnotavail |= w->addrnotavail;
		t.emfile |= w->emfile;
		nall += w->nlat;
	}
	t.interrupted = atomic_load(&stop_flag) > 0;
	t.stopped_on_errors = g.max_errors && t.errors >= g.max_errors;
	if (nall) {
		all = malloc(nall * sizeof(*all));
		if (!all)
			return fail("out of memory sorting %zu latencies", nall);
		for (i = 0; i < g.threads; i++) {
			memcpy(all + off, ws[i].lat, ws[i].nlat * sizeof(*all));
			off += ws[i].nlat;
		}
		qsort(all, nall, sizeof(*all), cmp_u32);
		t.p50 = pct(all, nall, 500);
		t.p99 = pct(all, nall, 990);
		t.p999 = pct(all, nall, 999);
	}
	if (g.shape == SH_IDLE) {
		t.secs = (double)hold_min / 1e9;
	} else {
		/* From the end of warm-up to the end of the last counted session. */
		uint64_t end = last_ok > g.warm_end ? last_ok : now_ns();

		t.secs = (double)(end - g.warm_end) / 1e9;
		t.rate = t.secs > 0 ? (double)t.ok / t.secs : 0;
	}
	report(&t);
	fflush(stdout);
	rc = t.errors ? 1 : 0;
	for (i = 0; i < g.threads; i++) {
		close(ws[i].ep);
		free(ws[i].conns);
		free(ws[i].freel);
		free(ws[i].lat);
	}
	free(ws);
	free(all);
	return rc;
}
