/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_LOG_H
#define ML_LOG_H

enum ml_level { ML_ERROR, ML_WARN, ML_INFO, ML_DEBUG };

extern int ml_log_level;
/* Non-zero: errors are logged as warnings (a failure that will be recovered
 * from, such as the kernel engine's under --engine auto). */
extern int ml_log_soften;

void ml_log(enum ml_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Route libbpf's messages through ml_log; silence them with quiet != 0
 * during probes that are expected to fail. */
void ml_log_libbpf(int quiet);

/* The last BPF program the kernel refused to load, as libbpf reported it:
 * its name and the verifier log's last line (NULL: none so far). */
struct ml_bpf_reject {
	char prog[64];
	char line[256];
};
const struct ml_bpf_reject *ml_libbpf_reject(void);

#define log_err(...)	ml_log(ML_ERROR, __VA_ARGS__)
#define log_warn(...)	ml_log(ML_WARN, __VA_ARGS__)
#define log_info(...)	ml_log(ML_INFO, __VA_ARGS__)
#define log_dbg(...)	ml_log(ML_DEBUG, __VA_ARGS__)

#endif
