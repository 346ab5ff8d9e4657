/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_REPLIES_H
#define ML_REPLIES_H

#include "mailless.h"

struct ml_opts;

/* Render every reply line of o into cfg (hostname, dialect, texts). */
void ml_render(struct ml_config *cfg, const struct ml_opts *o);

#endif
