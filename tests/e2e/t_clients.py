#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 120
"""
t_clients.py - a real client nobody here wrote: Python's smtplib.

  rfc7504 dialect: connecting raises SMTPConnectError with code 521.
  rcpt dialect: sendmail() raises SMTPRecipientsRefused, 521 for every
  recipient; EHLO/HELO/NOOP/RSET/VRFY/DATA/QUIT replies as smtplib parses
  them (EHLO: the one extension ENHANCEDSTATUSCODES); IPv4 and IPv6.
  Expected replies come from tests/e2e/mltest.py's TEXTS.
"""
import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mltest import Env, Replies, StartError, Suite, engines, netns, skipped_engines

t = Suite("t_clients")
MSG = "From: a@example.test\r\nTo: x@example.test\r\nSubject: test\r\n\r\nhello\r\n"


def smtp(pair, addr, **kw):
    """An smtplib.SMTP connected from the client namespace."""
    with netns(pair.cli):
        return smtplib.SMTP(addr, 25, local_hostname="client.test", timeout=10, **kw)


def case_rfc7504(pair, addr, host):
    try:
        s = smtp(pair, addr)
    except smtplib.SMTPConnectError as e:
        exp = Replies(host, "rfc7504").smtplib("greet")
        assert (e.smtp_code, e.smtp_error) == exp, "greeting %r, expected %r" % (
            (e.smtp_code, e.smtp_error), exp)
        return
    s.close()
    raise AssertionError("connected without SMTPConnectError")


def case_sendmail(pair, addr, host, rcpts):
    R = Replies(host)
    s = smtp(pair, addr)
    try:
        try:
            s.sendmail("a@example.test", rcpts, MSG)
        except smtplib.SMTPRecipientsRefused as e:
            exp = {r: R.smtplib("reject") for r in rcpts}
            assert e.recipients == exp, "refused %r, expected %r" % (e.recipients, exp)
        else:
            raise AssertionError("sendmail did not raise SMTPRecipientsRefused")
        code, msg = s.quit()
        assert (code, msg) == R.smtplib("quit"), "QUIT reply %r" % ((code, msg),)
    finally:
        s.close()


def case_commands(pair, addr, host):
    R = Replies(host)
    s = smtp(pair, addr)
    try:
        assert s.ehlo() == R.smtplib("ehlo"), "EHLO %r" % (s.ehlo_resp,)
        assert s.esmtp_features == {"enhancedstatuscodes": ""}, \
            "EHLO advertised %r, not ENHANCEDSTATUSCODES alone" % s.esmtp_features
        assert s.helo() == R.smtplib("helo"), "HELO %r" % (s.helo_resp,)
        for cmd, exp in ((s.noop, R.smtplib("ok")), (s.rset, R.smtplib("ok")),
                         (lambda: s.mail("a@example.test"), R.smtplib("ok")),
                         (lambda: s.rcpt("x@example.test"), R.smtplib("reject")),
                         (lambda: s.docmd("DATA"), R.smtplib("norcpt")),
                         (lambda: s.verify("root"), R.smtplib("reject")),
                         (lambda: s.docmd("HELP"), R.smtplib("reject"))):
            got = cmd()
            assert got == exp, "got %r, expected %r" % (got, exp)
        try:
            s.starttls()
        except smtplib.SMTPNotSupportedError:
            pass
        else:
            raise AssertionError("STARTTLS did not fail")
        assert s.quit() == R.smtplib("quit")
    finally:
        s.close()


def main():
    for e in skipped_engines():
        t.skip("clients/%s" % e, "engine excluded by MLT_ENGINES")
    try:
        with Env(t) as env:
            x = 30
            for engine in engines():
                for dialect in ("rcpt", "rfc7504"):
                    x += 1
                    pair = env.pair(x=x, tag="%s%s" % (engine[0], dialect[:2]))
                    host = "%s-%s.smtplib.test" % (engine[0], dialect)
                    name = "clients/%s/%s" % (engine, dialect)
                    try:
                        env.server(pair, engine=engine, host=host, dialect=dialect)
                    except StartError as e:
                        t.fail("%s: server starts" % name, str(e))
                        continue
                    for fam, addr in (("IPv4", pair.v4), ("IPv6", pair.v6)):
                        if dialect == "rfc7504":
                            t.run("%s: smtplib SMTPConnectError 521 (%s)" % (name, fam),
                                  case_rfc7504, pair, addr, host)
                            continue
                        t.run("%s: sendmail refused with 521 (%s)" % (name, fam),
                              case_sendmail, pair, addr, host, ["x@example.test"])
                    if dialect == "rcpt":
                        t.run("%s: sendmail with 3 recipients, all refused" % name,
                              case_sendmail, pair, pair.v4, host,
                              ["x@example.test", "y@example.test", "z@example.test"])
                        t.run("%s: smtplib commands" % name, case_commands, pair, pair.v4, host)
    except StartError as e:
        t.fail("clients: setup", str(e))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
