/* floor: the cost of TCP alone, as a baseline for `make bench` (tools/bench.py).
 *
 * An epoll server that does the least any SMTP responder must do per session,
 * with no protocol logic at all:
 *
 *   --mode lines (default): greet "220 floor", answer every received line with
 *       a fixed "250 ok" (all replies of one read() in one write()), answer a
 *       line that starts with "QUIT" with "221 bye" and close. Same segments,
 *       round trips and close order (server closes first, TIME_WAIT on the
 *       server side) as mailless for every loadgen shape, so its CPU per
 *       session is the floor for that shape. loadgen validates it with
 *       --expect-any.
 *   --mode close: greet "521 floor" and close at once: connect, one segment,
 *       close. The cheapest SMTP-shaped session there is (what postscreen's
 *       drop and Postfix's 521-at-connect do for every shape).
 *
 * One thread, level-triggered epoll, non-blocking accept4 in a loop; lines are
 * never longer than loadgen's, so a 4 KiB read buffer and a bounded reply
 * buffer are enough (a line split across reads is answered when its LF comes).
 * The soft RLIMIT_NOFILE is raised to the hard one, like mailless and loadgen.
 *
 * Usage: floor [--mode lines|close] ADDR:PORT     (IPv4 literal, e.g. 127.0.0.1:2599)
 * Stops on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Per-connection state: whether the current line starts with "QUIT" needs the
 * first four octets of the line, which may be split across reads. */
struct conn {
	unsigned char head[4];
	unsigned int  col;   /* octets of the current line seen so far */
};

static struct conn *conns;
static int nconns;

int main(int argc, char **argv)
{
	int close_mode = 0;
	const char *target = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			const char *m = argv[++i];
			if (!strcmp(m, "close"))
				close_mode = 1;
			else if (strcmp(m, "lines")) {
				fprintf(stderr, "floor: Error: --mode: '%s' is not lines or close\n", m);
				return 2;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: floor [--mode lines|close] ADDR:PORT\n");
			return 2;
		} else
			target = argv[i];
	}
	if (!target) {
		fprintf(stderr, "usage: floor [--mode lines|close] ADDR:PORT\n");
		return 2;
	}
	char host[64];
	const char *colon = strrchr(target, ':');
	if (!colon || (size_t)(colon - target) >= sizeof(host)) {
		fprintf(stderr, "floor: Error: '%s' is not ADDR:PORT\n", target);
		return 2;
	}
	memcpy(host, target, colon - target);
	host[colon - target] = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "floor: Error: '%s' is not an IPv4 address\n", host);
		return 2;
	}

	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	nconns = (int)rl.rlim_cur + 16;
	conns = calloc(nconns, sizeof(*conns));
	if (!conns) {
		perror("floor: Error: calloc");
		return 1;
	}

	struct sigaction act = { .sa_handler = on_signal };
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4096)) {
		fprintf(stderr, "floor: Error: listen on %s: %s\n", target, strerror(errno));
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	static const char greet_lines[] = "220 floor\r\n", greet_close[] = "521 floor\r\n";
	static const char ok[] = "250 ok\r\n", bye[] = "221 bye\r\n";
	char buf[4096];
	char out[4096 * (sizeof(bye) - 1)]; /* worst case: a reply per octet (bare LFs) */
	struct epoll_event evs[256];

	while (!stop) {
		int n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("floor: Error: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				for (;;) {
					int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (c < 0) {
						if (errno == EMFILE || errno == ENFILE)
							usleep(1000); /* never spin on a full table */
						break;
					}
					if (close_mode) {
						(void)!write(c, greet_close, sizeof(greet_close) - 1);
						close(c);
						continue;
					}
					if (c >= nconns) { /* cannot happen below the rlimit */
						close(c);
						continue;
					}
					conns[c].col = 0;
					if (write(c, greet_lines, sizeof(greet_lines) - 1) < 0) {
						close(c);
						continue;
					}
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				close(fd);
				continue;
			}
			struct conn *cs = &conns[fd];
			size_t o = 0;
			int quit = 0;
			for (ssize_t k = 0; k < r && !quit; k++) {
				unsigned char ch = buf[k];
				if (cs->col < 4)
					cs->head[cs->col] = ch;
				cs->col++;
				if (ch != '\n')
					continue;
				if (cs->col >= 5 && !strncasecmp((char *)cs->head, "QUIT", 4)) {
					memcpy(out + o, bye, sizeof(bye) - 1);
					o += sizeof(bye) - 1;
					quit = 1;
				} else {
					memcpy(out + o, ok, sizeof(ok) - 1);
					o += sizeof(ok) - 1;
				}
				cs->col = 0;
			}
			if (o && write(fd, out, o) < 0)
				quit = 1;
			if (quit)
				close(fd); /* server closes first, as mailless does after 221 */
		}
	}
	return 0;
}
