// SPDX-License-Identifier: GPL-2.0
/*
 * wirecheck - byte-exact SMTP transcripts against a running mailless.
 *
 *   wirecheck HOST PORT HOSTNAME rcpt|rfc7504 [xdp]
 *
 * xdp: the XDP responder (--engine xdp) answers; where it differs from the
 * socket engines by design (README, "What a client sees"), its row is
 * expected: at most 15 replies unacknowledged, then 421 too many
 * pipelined commands.
 *
 * Used where Python is not available (the Debian 6.1 kernel under qemu) and
 * as a fast first check on the host. Prints "ok - NAME" / "not ok - NAME:
 * why" per case; exits 1 if any case failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXOUT	(256 * 1024)

static const char *host, *port, *name;
static int rfc7504, xdp;

struct chunk {
	const char *data;
	size_t len;		/* 0: strlen(data) */
	int delay_ms;		/* before sending it */
};

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int dial(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd;

	if (getaddrinfo(host, port, &hints, &ai))
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Read until EOF or timeout_ms of silence; returns bytes read. */
static size_t drain(int fd, char *out, size_t have, int timeout_ms, int *eof)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	*eof = 0;
	while (have < MAXOUT && poll(&p, 1, timeout_ms) == 1) {
		ssize_t n = recv(fd, out + have, MAXOUT - have, 0);

		if (n <= 0) {
			*eof = 1;
			break;
		}
		have += n;
	}
	return have;
}

static void show(const char *what, const char *s, size_t n)
{
	size_t i;

	fprintf(stdout, "#   %s (%zu bytes): ", what, n);
	for (i = 0; i < n && i < 400; i++) {
		unsigned char c = s[i];

		if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 32 || c > 126)
			fprintf(stdout, "\\x%02x", c);
		else
			fputc(c, stdout);
	}
	fputs(n > 400 ? "...\n" : "\n", stdout);
}

static int failures;

/* Send the chunks (early: without waiting for the greeting), read to EOF,
 * compare with want. */
static void expect(const char *tname, const struct chunk *ch, int nch, int early,
		   const char *want, size_t wantlen)
{
	static char out[MAXOUT];
	size_t have = 0;
	int fd = dial(), i, eof = 0;

	if (fd < 0) {
		printf("not ok - %s: connect: %s\n", tname, strerror(errno));
		failures++;
		return;
	}
	if (!early)
		have = drain(fd, out, 0, 300, &eof);
	for (i = 0; i < nch; i++) {
		if (ch[i].delay_ms)
			msleep(ch[i].delay_ms);
		send(fd, ch[i].data, ch[i].len ? ch[i].len : strlen(ch[i].data), MSG_NOSIGNAL);
	}
	have = drain(fd, out, have, 3000, &eof);
	close(fd);
	if (!wantlen)
		wantlen = strlen(want);
	if (eof && have == wantlen && !memcmp(out, want, have)) {
		printf("ok - %s\n", tname);
		return;
	}
	printf("not ok - %s: %s\n", tname, eof ? "wrong bytes" : "server did not close");
	show("want", want, wantlen);
	show("got ", out, have);
	failures++;
}

int main(int argc, char **argv)
{
	static char want[MAXOUT], big[MAXOUT];
	char greet[512], r521[512], r250h[512], r250e[512], r250[512], r554[512], r221[512],
	     r500[512], r421[512], r421p[512];
	int i;

	if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "xdp"))) {
		fprintf(stderr, "usage: wirecheck HOST PORT HOSTNAME rcpt|rfc7504 [xdp]\n");
		return 2;
	}
	host = argv[1];
	port = argv[2];
	name = argv[3];
	rfc7504 = !strcmp(argv[4], "rfc7504");
	xdp = argc == 6;

	/* README's table, as tests/e2e/mltest.py TEXTS has it (no Python here):
	 * rcpt with RFC 3463 codes, rfc7504 without, and 521 to every command
	 * but QUIT, EHLO and HELO included. */
	if (rfc7504) {
		snprintf(greet, sizeof(greet), "521 %s does not accept mail (5.3.2)\r\n", name);
		snprintf(r521, sizeof(r521), "521 %s does not accept mail (5.3.2)\r\n", name);
		strcpy(r250h, r521);
		strcpy(r250e, r521);
		strcpy(r250, r521);
		strcpy(r554, r521);
		snprintf(r221, sizeof(r221), "221 %s closing connection\r\n", name);
		snprintf(r500, sizeof(r500), "500 %s line too long\r\n", name);
		snprintf(r421, sizeof(r421), "421 %s no line end in 64 KiB, closing connection\r\n",
			 name);
		snprintf(r421p, sizeof(r421p),
			 "421 %s too many pipelined commands, closing connection\r\n", name);
	} else {
		snprintf(greet, sizeof(greet),
			 "220 %s ESMTP mailless: this host does not accept mail\r\n", name);
		snprintf(r521, sizeof(r521), "521 5.3.2 %s does not accept mail\r\n", name);
		snprintf(r250h, sizeof(r250h), "250 %s\r\n", name);
		snprintf(r250e, sizeof(r250e), "250-%s\r\n250 ENHANCEDSTATUSCODES\r\n", name);
		snprintf(r250, sizeof(r250), "250 2.0.0 %s OK\r\n", name);
		snprintf(r554, sizeof(r554), "554 5.3.2 %s no valid recipients\r\n", name);
		snprintf(r221, sizeof(r221), "221 2.0.0 %s closing connection\r\n", name);
		snprintf(r500, sizeof(r500), "500 5.5.2 %s line too long\r\n", name);
		snprintf(r421, sizeof(r421),
			 "421 4.5.2 %s no line end in 64 KiB, closing connection\r\n", name);
		snprintf(r421p, sizeof(r421p),
			 "421 4.5.0 %s too many pipelined commands, closing connection\r\n", name);
	}

	{	/* every row of the protocol table, one command per segment */
		struct chunk c[] = {
			{ "EHLO client.example\r\n" }, { "HELO client.example\r\n", 0, 20 },
			{ "MAIL FROM:<a@example.org>\r\n", 0, 20 }, { "RCPT TO:<b@example.net>\r\n", 0, 20 },
			{ "DATA\r\n", 0, 20 }, { "RSET\r\n", 0, 20 }, { "NOOP\r\n", 0, 20 },
			{ "VRFY root\r\n", 0, 20 }, { "\r\n", 0, 20 }, { "quit \r\n", 0, 20 },
			{ "NOOP\r\n", 0, 20 },
		};
		want[0] = 0;
		strcat(want, greet); strcat(want, r250e); strcat(want, r250h);
		strcat(want, r250); strcat(want, r521); strcat(want, r554);
		strcat(want, r250); strcat(want, r250); strcat(want, r521);
		strcat(want, r521); strcat(want, r221);
		expect("protocol table", c, 11, 0, want, 0);
	}
	{	/* pipelined in one write, bare LF, case */
		struct chunk c[] = { { "ehlo x\nmail from:<>\nrcpt to:<x@y>\nQuIt\n" } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r250e); strcat(want, r250);
		strcat(want, r521); strcat(want, r221);
		expect("pipelined bare LF", c, 1, 0, want, 0);
	}
	{	/* one byte at a time */
		static const char s[] = "NOOP\r\nQUIT\r\n";
		struct chunk c[sizeof(s) - 1];

		for (i = 0; i < (int)sizeof(s) - 1; i++) {
			c[i].data = s + i;
			c[i].len = 1;
			c[i].delay_ms = 5;
		}
		want[0] = 0;
		strcat(want, greet); strcat(want, r250); strcat(want, r221);
		expect("one byte at a time", c, sizeof(s) - 1, 0, want, 0);
	}
	{	/* early talker: greeting first */
		struct chunk c[] = { { "EHLO early\r\nQUIT\r\n" } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r250e); strcat(want, r221);
		expect("early talker", c, 1, 1, want, 0);
	}
	{	/* QUITX and QUIT with an argument are not QUIT */
		struct chunk c[] = { { "QUITX\r\nQUIT now\r\nQUIT\r\nNOOP\r\n" } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r521); strcat(want, r521); strcat(want, r221);
		expect("QUITX is not QUIT", c, 1, 0, want, 0);
	}
	{	/* 1000 pipelined commands in one write */
		big[0] = 0;
		want[0] = 0;
		strcat(want, greet);
		for (i = 0; i < 1000; i++) {
			strcat(big, i % 2 ? "NOOP\r\n" : "RCPT TO:<x@y>\r\n");
			if (!xdp || i < 15)
				strcat(want, i % 2 ? r250 : r521);
		}
		strcat(big, "QUIT\r\n");
		strcat(want, xdp ? r421p : r221);
		struct chunk c[] = { { big } };
		expect("1000 pipelined", c, 1, 0, want, 0);
	}
	{	/* 512 octets is a line, 513 is too long; the session goes on */
		static char l512[600], l513[600];

		memset(l512, 'a', 510); memcpy(l512 + 510, "\r\n", 3);
		memset(l513, 'b', 511); memcpy(l513 + 511, "\r\n", 3);
		struct chunk c[] = { { l512 }, { l513, 0, 20 }, { "QUIT\r\n", 0, 20 } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r521); strcat(want, r500); strcat(want, r221);
		expect("long line", c, 3, 0, want, 0);
	}
	{	/* a line split across segments */
		struct chunk c[] = { { "MAI" }, { "L FROM:<a", 0, 50 }, { "@b>\r", 0, 50 },
				     { "\nQUIT\r\n", 0, 50 } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r250); strcat(want, r221);
		expect("split line", c, 4, 0, want, 0);
	}
	{	/* junk: NUL, non-ASCII, lone CR, TLS ClientHello, HTTP */
		static const char junk[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\xff\r\x80\n"
			"GET / HTTP/1.1\r\nHost: x\r\n\r\nNO\rOP\r\nQUIT\r\n";
		struct chunk c[] = { { junk, sizeof(junk) - 1 } };
		want[0] = 0;
		strcat(want, greet);
		for (i = 0; i < 5; i++)
			strcat(want, r521);
		strcat(want, r221);
		expect("junk", c, 1, 0, want, 0);
	}
	{	/* 64 KiB without a line end: 421 and close */
		memset(big, 'x', 70000);
		struct chunk c[] = { { big, 70000 } };
		want[0] = 0;
		strcat(want, greet); strcat(want, r421);
		expect("flood", c, 1, 0, want, 0);
	}
	return failures ? 1 : 0;
}
