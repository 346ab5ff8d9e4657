/* SPDX-License-Identifier: GPL-2.0 */
/*
 * verifier.h - what the BPF programs do to keep the verifier's knowledge
 * where it is needed (docs/design.md, "Verifier and compiler notes").
 */
#ifndef ML_BPF_VERIFIER_H
#define ML_BPF_VERIFIER_H

#include <bpf/bpf_helpers.h>

/* Hide a value from the compiler: it must keep the register as it is, so
 * that a bound checked right after is a bound on that very register (6.1
 * loses a bound checked on a copy), and clang cannot fold a ctx load back
 * into a modified ctx pointer. libbpf's bpf_helpers.h has it since 0.8. */
#ifndef barrier_var
#define barrier_var(var)	asm volatile("" : "+r"(var))
#endif

/* The helpers' packet offsets stop below 64 KiB (MAX_PACKET_OFF in
 * net/core/filter.c, 0xffff): bpf_skb_load_bytes() and friends refuse an
 * offset at or past it, and the verifier bounds packet ranges by it. */
#define ML_PACKET_OFF_MAX	0xffff

#endif
